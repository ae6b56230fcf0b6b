"""Reproduces XLA:CPU's convolution slowdowns on the layers of the conv VAEs, stock against fvae's.

    python benchmarks/xla_cpu_conv.py [--batch 128] [--repeats 5]

For each layer of conv_chollet and conv_2d (batch 128, float32) it times one training
pass, the forward pass and the gradients with respect to the kernel and the input, in
milliseconds (best of --repeats):
  stock     lax.conv_general_dilated / lax.conv_transpose (what nn.Conv / nn.ConvTranspose run)
  fvae      fvae.models.conv_layers' matmul form (for the transposed conv: both phase layouts)
each as one compiled call ("alone") and per iteration of a 4-step `lax.scan` ("in scan").
Run it again after a jax upgrade: when "stock" matches "fvae", the workaround can go.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp

from fvae.models.conv_layers import conv3x3, conv_transpose3x3_stride2

DIMS = ("NHWC", "HWIO", "NHWC")
# name, input (H, W, C), output channels, kind
LAYERS = [
    ("encoder conv 28->14, 1->32", (28, 28, 1), 32, "conv2"),
    ("encoder conv 14->7, 32->64", (14, 14, 32), 64, "conv2"),
    ("transposed conv 7->14, 64->64", (7, 7, 64), 64, "transpose"),
    ("transposed conv 14->28, 64->32", (14, 14, 64), 32, "transpose"),
    ("pixel-shuffle conv 7x7, 64->256", (7, 7, 64), 256, "conv1"),
    ("pixel-shuffle conv 14x14, 64->128", (14, 14, 64), 128, "conv1"),
    ("final conv 28x28, 32->1", (28, 28, 32), 1, "conv1"),
]


def stock(kind: str):
    if kind == "transpose":
        return lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=DIMS)
    stride = 2 if kind == "conv2" else 1
    return lambda x, k: jax.lax.conv_general_dilated(x, k, (stride, stride), "SAME", dimension_numbers=DIMS)


def fvae_forms(kind: str) -> dict:
    if kind == "transpose":
        return {"fvae (joint phases)": functools.partial(conv_transpose3x3_stride2, phases="joint"),
                "fvae (split phases)": functools.partial(conv_transpose3x3_stride2, phases="split")}
    stride = 2 if kind == "conv2" else 1
    return {"fvae": lambda x, k: conv3x3(x, k, stride)}


def training_pass(layer):
    """Forward plus the kernel and input gradients of sum(y^2) / 2."""
    return jax.grad(lambda x, k: 0.5 * jnp.sum(jnp.square(layer(x, k))), argnums=(0, 1))


def best_ms(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, batch {args.batch}; ms per training pass "
          "(forward + kernel and input gradients)")
    print("| layer | implementation | alone ms | in scan ms/step |\n| --- | --- | --- | --- |")
    steps = 4
    for name, (h, w, c), f, kind in LAYERS:
        x = jax.random.normal(jax.random.key(0), (args.batch, h, w, c))
        xs = jax.random.normal(jax.random.key(1), (steps, args.batch, h, w, c))
        kernel = 0.1 * jax.random.normal(jax.random.key(2), (3, 3, c, f))
        for label, layer in {"stock": stock(kind), **fvae_forms(kind)}.items():
            grad = training_pass(layer)
            alone = best_ms(jax.jit(grad), (x, kernel), args.repeats)

            @jax.jit
            def looped(xs, k, grad=grad):
                def body(acc, x):
                    dx, dk = grad(x, k)
                    return acc + dk, dx.sum()
                return jax.lax.scan(body, jnp.zeros_like(k), xs)

            in_scan = best_ms(looped, (xs, kernel), args.repeats) / steps
            print(f"| {name} | {label} | {alone:.2f} | {in_scan:.2f} |", flush=True)


if __name__ == "__main__":
    main()
