"""3x3 convolutions that XLA:CPU runs as matrix products, with the parameters of Flax's own.

XLA:CPU runs a convolution fast only in one canonical form, and the gradients of these
layers (an input-dilated convolution for the transposed conv's weights; any convolution
inside a `lax.scan` loop) fall back to naive loops (benchmarks/xla_cpu_conv.py shows each
case). Written with pads, strided slices, concatenations and one matmul, a layer and its
gradient contain no convolution at all, in or out of a loop.

`Conv3x3` and `ConvTranspose3x3` hold the same parameters as `nn.Conv` / `nn.ConvTranspose`
with a (3, 3) kernel and SAME padding ("kernel" (3, 3, C, F), "bias" (F,), the same
initializers), so the two implementations share checkpoints. `impl`: "matmul", "xla"
(the backend's convolution: cuDNN on GPUs, where it is fast) or "auto" (matmul on the CPU,
xla elsewhere), chosen when the model is traced.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

CONV_IMPLS = ("auto", "matmul", "xla")  # model.conv_impl: "auto" is matmul on the CPU, else the backend's conv


def use_matmul(impl: str) -> bool:
    """Whether `impl` means the matmul form on the current default backend."""
    if impl not in CONV_IMPLS:
        raise ValueError(f"conv impl must be one of {CONV_IMPLS}, got {impl!r}")
    return impl == "matmul" or (impl == "auto" and jax.default_backend() == "cpu")


def _same_padding(size: int, stride: int) -> tuple[int, int]:
    """lax's SAME padding of a 3-tap window (as Keras and nn.Conv use it): low, high."""
    out = -(-size // stride)
    total = max((out - 1) * stride + 3 - size, 0)
    return total // 2, total - total // 2


def _shifted_views(x: jax.Array, taps: list[tuple[int, int]], out_h: int, out_w: int, stride: int) -> list:
    """x[:, dy + stride * i, dx + stride * j, :] for i < out_h, j < out_w, one view per tap (dy, dx)."""
    b, _, _, c = x.shape
    return [jax.lax.slice(x, (0, dy, dx, 0), (b, dy + stride * (out_h - 1) + 1, dx + stride * (out_w - 1) + 1, c),
                          (1, stride, stride, 1)) for dy, dx in taps]


def conv3x3(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    """The SAME 3x3 convolution of x (B, H, W, C) with kernel (3, 3, C, F), as matmuls: (B, H', W', F).

    With few output channels (F < C, e.g. the last layer's one channel per pixel) the
    product comes first, x (B*H*W, C) @ (C, 9F), and the 9 shifted outputs are added: a
    matrix-vector product of the 9C-wide patches would be a slow reduction. Otherwise the
    9 shifted views are concatenated into patches (B*H'*W', 9C) @ (9C, F).
    """
    b, h, w, c = x.shape
    f = kernel.shape[-1]
    (top, bottom), (left, right) = _same_padding(h, stride), _same_padding(w, stride)
    out_h, out_w = -(-h // stride), -(-w // stride)
    taps = [(dy, dx) for dy in range(3) for dx in range(3)]
    if f < c and stride == 1:
        products = (x.reshape(-1, c) @ kernel.transpose(2, 0, 1, 3).reshape(c, 9 * f)).reshape(b, h, w, 9 * f)
        products = jnp.pad(products, ((0, 0), (top, bottom), (left, right), (0, 0)))
        views = _shifted_views(products, taps, out_h, out_w, 1)
        return sum(view[..., t * f:(t + 1) * f] for t, view in enumerate(views))
    padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    patches = jnp.concatenate(_shifted_views(padded, taps, out_h, out_w, stride), axis=-1)  # (B, H', W', 9C)
    return (patches.reshape(-1, 9 * c) @ kernel.reshape(9 * c, f)).reshape(b, out_h, out_w, f)


# Which tap t of the 3-tap kernel meets which input offset a in {0: x[m-1], 1: x[m]} for the
# even (p = 0) and odd (p = 1) outputs of a stride-2 SAME transposed convolution (lax's
# conv_transpose: out[2m] = x[m-1] w[0] + x[m] w[2], out[2m+1] = x[m] w[1]).
_PHASE_TAPS = np.zeros((2, 2, 3), np.float32)  # (a, p, t)
_PHASE_TAPS[0, 0, 0] = _PHASE_TAPS[1, 0, 2] = _PHASE_TAPS[1, 1, 1] = 1.0


def conv_transpose3x3_stride2(x: jax.Array, kernel: jax.Array, phases: str = "joint") -> jax.Array:
    """nn.ConvTranspose((3, 3), strides 2, SAME) of x (B, H, W, C), kernel (3, 3, C, F): (B, 2H, 2W, F).

    No multiply touches an inserted zero: each output phase (even/odd row, even/odd column)
    is a small convolution of x itself. phases="joint": one matmul of 2x2 patches (4C) with
    a (4C, 4F) kernel holding all four phases (16 CF multiplies per input pixel, the zero
    taps included), then depth-to-space. phases="split": four matmuls with only the taps
    each phase uses (4, 2, 2 and 1: the minimal 9 CF).
    """
    b, h, w, c = x.shape
    f = kernel.shape[-1]
    padded = jnp.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0)))  # x[m - 1] at offset a = 0
    views = _shifted_views(padded, [(a, bb) for a in range(2) for bb in range(2)], h, w, 1)  # (a, b) order
    if phases == "joint":
        taps = jnp.asarray(_PHASE_TAPS, kernel.dtype)
        joint = jnp.einsum("apt,bqs,tscf->abcpqf", taps, taps, kernel).reshape(4 * c, 4 * f)
        out = (jnp.concatenate(views, -1).reshape(-1, 4 * c) @ joint).reshape(b, h, w, 2, 2, f)
    elif phases == "split":
        def phase(p: int, q: int) -> jax.Array:
            used = [(a, bb) for a in range(2) for bb in range(2)
                    if _PHASE_TAPS[a, p].any() and _PHASE_TAPS[bb, q].any()]
            weights = jnp.concatenate([kernel[int(_PHASE_TAPS[a, p].argmax()), int(_PHASE_TAPS[bb, q].argmax())]
                                       for a, bb in used], axis=0)  # (len(used) * C, F)
            patches = jnp.concatenate([views[2 * a + bb] for a, bb in used], -1)
            return (patches.reshape(-1, len(used) * c) @ weights).reshape(b, h, w, f)
        out = jnp.stack([jnp.stack([phase(p, q) for q in range(2)], 3) for p in range(2)], 3)  # (B, H, W, 2, 2, F)
    else:
        raise ValueError(f"phases must be 'joint' or 'split', got {phases!r}")
    return out.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, f)


def _conv_parameters(module: nn.Module, x: jax.Array, features: int, dtype: Any) -> tuple:
    """x, "kernel" (3, 3, C, F) and "bias" (F,) as nn.Conv / nn.ConvTranspose create them, in `dtype`."""
    kernel = module.param("kernel", nn.initializers.lecun_normal(), (3, 3, x.shape[-1], features))
    bias = module.param("bias", nn.initializers.zeros_init(), (features,))
    return tuple(nn.dtypes.promote_dtype(x, kernel, bias, dtype=dtype))


class Conv3x3(nn.Module):
    """nn.Conv(features, (3, 3), strides, padding="SAME") with the same parameters; `impl` above."""

    features: int
    strides: int = 1
    impl: str = "auto"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x, kernel, bias = _conv_parameters(self, x, self.features, self.dtype)
        if use_matmul(self.impl):
            y = conv3x3(x, kernel, self.strides)
        else:
            y = jax.lax.conv_general_dilated(x, kernel, (self.strides, self.strides), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias


class ConvTranspose3x3(nn.Module):
    """nn.ConvTranspose(features, (3, 3), strides=(2, 2), padding="SAME") with the same
    parameters; `impl` above; `phases` of the matmul form: see conv_transpose3x3_stride2."""

    features: int
    impl: str = "auto"
    phases: str = "joint"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x, kernel, bias = _conv_parameters(self, x, self.features, self.dtype)
        if use_matmul(self.impl):
            y = conv_transpose3x3_stride2(x, kernel, self.phases)
        else:
            y = jax.lax.conv_transpose(x, kernel, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias
