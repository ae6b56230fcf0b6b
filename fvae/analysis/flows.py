"""The neural latent samplers of fvae.analysis.samplers: a RealNVP flow (Dinh et al. 2017) and
a second-stage VAE (Dai and Wipf 2019), each a small Flax network fitted to codes by Adam
(its rate decayed to 0 on a cosine) with the parameters of the best validation epoch kept.

Both see codes standardized by the training codes' mean and standard deviation (kept in
their parameters as "shift" and "scale"), so one setting fits codes of any scale.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from fvae.models.gaussians import log_normal_diag, log_standard_normal


class _MLP(nn.Module):
    hidden: Sequence[int]
    out: int
    zero_output: bool = False  # A coupling that starts as the identity map.
    skip: bool = False  # The output layer also sees the input (Dai and Wipf's second stage).

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        for width in self.hidden:
            h = nn.relu(nn.Dense(width)(h))
        if self.skip:
            h = jnp.concatenate([x, h], axis=-1)
        init = nn.initializers.zeros if self.zero_output else nn.initializers.lecun_normal()
        return nn.Dense(self.out, kernel_init=init)(h)


def _masks(dim: int, layers: int) -> np.ndarray:
    """Which coordinates each coupling layer keeps (1) and transforms (0): halves and
    alternate coordinates in turn, each followed by its complement."""
    index = np.arange(dim)
    kinds = [index < dim // 2, index % 2 == 0]
    return np.stack([kinds[(i // 2) % 2] ^ bool(i % 2) for i in range(layers)]).astype(np.float32)


class _RealNVPNet(nn.Module):
    """Affine couplings y = m x + (1 - m)(x exp(s(m x)) + t(m x)), s bounded by tanh."""

    dim: int
    layers: int
    hidden: Sequence[int]

    def setup(self):
        self.nets = [_MLP(self.hidden, 2 * self.dim, zero_output=True) for _ in range(self.layers)]
        self.scales = [self.param(f"scale_{i}", nn.initializers.ones, (self.dim,)) for i in range(self.layers)]

    def _shift_scale(self, i: int, kept: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        s, t = jnp.split(self.nets[i](kept), 2, axis=-1)
        return (1 - mask) * self.scales[i] * jnp.tanh(s), (1 - mask) * t

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Data -> base: (u (B, D), log |det du/dx| (B,))."""
        log_det = jnp.zeros(x.shape[0])
        for i, mask in enumerate(_masks(self.dim, self.layers)):
            s, t = self._shift_scale(i, x * mask, mask)
            x = x * mask + (1 - mask) * (x * jnp.exp(s) + t)
            log_det = log_det + jnp.sum(s, axis=-1)
        return x, log_det

    def inverse(self, u: jax.Array) -> jax.Array:
        """Base -> data."""
        for i, mask in reversed(list(enumerate(_masks(self.dim, self.layers)))):
            s, t = self._shift_scale(i, u * mask, mask)
            u = u * mask + (1 - mask) * (u - t) * jnp.exp(-s)
        return u


class _SecondStageVAE(nn.Module):
    """q(u | z) and p(z | u) = N(mu(u), gamma I) with a learned gamma, u and z of one size."""

    dim: int
    hidden: Sequence[int]

    def setup(self):
        self.encoder = _MLP(self.hidden, 2 * self.dim, skip=True)
        self.decoder = _MLP(self.hidden, self.dim, skip=True)
        self.log_gamma = self.param("log_gamma", nn.initializers.zeros, ())

    def __call__(self, z: jax.Array, key: jax.Array, num_samples: int = 1) -> jax.Array:
        """Log importance weights (K, B) of K draws u ~ q(u | z)."""
        mean, logvar = jnp.split(self.encoder(z), 2, axis=-1)
        u = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, (num_samples, *mean.shape))
        log_likelihood = log_normal_diag(z, self.decoder(u), jnp.broadcast_to(self.log_gamma, z.shape))
        return log_likelihood + log_standard_normal(u) - log_normal_diag(u, mean, logvar)

    def decode(self, u: jax.Array) -> jax.Array:
        return self.decoder(u)


def _apply(net: nn.Module, params, *args, method: str | None = None) -> Any:
    """net.apply, typed as what the method returns (arrays), not Flax's union of return shapes."""
    return net.apply({"params": params}, *args, method=method)


def _standardize(params: dict, z) -> jax.Array:
    return (jnp.asarray(z, jnp.float32) - params["shift"]) / params["scale"]


def _fit(loss: Callable, net_params, train: np.ndarray, val: np.ndarray, key: jax.Array, epochs: int,
         batch_size: int, learning_rate: float) -> tuple[dict, dict]:
    """Adam on loss(net_params, batch, key) over `epochs` epochs of standardized codes (batches
    shuffled by fold_in(key, epoch)), its rate decayed from `learning_rate` to 0 on a cosine;
    the parameters of the epoch with the lowest validation loss, with the standardization, and
    a note of the fit."""
    shift, scale = train.mean(0), train.std(0) + 1e-6
    train_std, val_std = (jnp.asarray((a - shift) / scale, jnp.float32) for a in (train, val))
    batch_size = min(batch_size, len(train))
    steps = max(1, len(train) // batch_size)
    tx = optax.adam(optax.cosine_decay_schedule(learning_rate, epochs * steps))

    @jax.jit
    def epoch(carry, e):
        def step(carry, indices):
            params, opt_state = carry
            grads = jax.grad(loss)(params, train_std[indices], jax.random.fold_in(jax.random.fold_in(key, e),
                                                                                  indices[0]))
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        order = jax.random.permutation(jax.random.fold_in(key, e), len(train))[:steps * batch_size]
        carry, _ = jax.lax.scan(step, carry, order.reshape(steps, batch_size))
        return carry, loss(carry[0], val_std, jax.random.key(0))

    carry, best, best_loss, best_epoch = (net_params, tx.init(net_params)), net_params, math.inf, 0
    for e in range(epochs):
        carry, val_loss = epoch(carry, e)
        if float(val_loss) < best_loss:
            best, best_loss, best_epoch = carry[0], float(val_loss), e + 1
    log_scale = float(np.sum(np.log(scale)))
    return ({"net": best, "shift": jnp.asarray(shift, jnp.float32), "scale": jnp.asarray(scale, jnp.float32)},
            {"best_epoch": best_epoch, "val_log_prob": -best_loss - log_scale})


@dataclasses.dataclass(frozen=True)
class RealNVP:
    """A RealNVP flow: exact log-density, samples by inverting the couplings."""

    layers: int = 6
    hidden: tuple[int, ...] = (128, 128)
    epochs: int = 50
    batch_size: int = 500
    learning_rate: float = 1e-3
    exact_density = True
    description = "RealNVP flow"

    def _net(self, dim: int) -> _RealNVPNet:
        return _RealNVPNet(dim, self.layers, self.hidden)

    def _log_prob_std(self, net_params, z: jax.Array) -> jax.Array:
        u, log_det = _apply(self._net(z.shape[-1]), net_params, z)
        return log_standard_normal(u) + log_det

    def fit(self, train: np.ndarray, val: np.ndarray, seed: int) -> tuple[dict, dict]:
        init_key, key = jax.random.split(jax.random.key(seed))
        net_params = self._net(train.shape[1]).init(init_key, jnp.zeros((1, train.shape[1])))["params"]
        loss = lambda p, z, k: -jnp.mean(self._log_prob_std(p, z))
        return _fit(loss, net_params, train, val, key, self.epochs, self.batch_size, self.learning_rate)

    def log_prob(self, params: dict, z) -> np.ndarray:
        log_prob = self._log_prob_std(params["net"], _standardize(params, z)) - jnp.sum(jnp.log(params["scale"]))
        return np.asarray(log_prob, np.float64)

    def sample(self, params: dict, key: jax.Array, num: int) -> jax.Array:
        dim = params["shift"].shape[0]
        u = jax.random.normal(key, (num, dim))
        return _apply(self._net(dim), params["net"], u, method="inverse") * params["scale"] + params["shift"]


@dataclasses.dataclass(frozen=True)
class TwoStageVAE:
    """A second VAE on the codes with a learned decoder variance gamma (Dai and Wipf: their
    skip connections, 3 hidden layers; without them, and at a constant rate, it collapsed to
    gamma = 1 on codes with far-from-Gaussian correlations, tests/test_samplers.py): samples
    are draws of its p(z | u) = N(mu(u), gamma I) at u ~ N(0, I) (Dai and Wipf take mu(u),
    the same as gamma goes to 0; where it does not, as on near-Gaussian codes, the means alone
    collapse to a point); log_prob is its IWAE bound (K=`bound_samples`), a lower bound on the
    log-density."""

    hidden: tuple[int, ...] = (256, 256, 256)
    epochs: int = 100
    batch_size: int = 500
    learning_rate: float = 1e-3
    bound_samples: int = 64
    exact_density = False
    description = "two-stage VAE"

    def _net(self, dim: int) -> _SecondStageVAE:
        return _SecondStageVAE(dim, self.hidden)

    def fit(self, train: np.ndarray, val: np.ndarray, seed: int) -> tuple[dict, dict]:
        init_key, key = jax.random.split(jax.random.key(seed))
        dim = train.shape[1]
        net_params = self._net(dim).init(init_key, jnp.zeros((1, dim)), init_key)["params"]
        loss = lambda p, z, k: -jnp.mean(_apply(self._net(dim), p, z, k))
        params, note = _fit(loss, net_params, train, val, key, self.epochs, self.batch_size, self.learning_rate)
        # gamma near 1 means the second stage learned nothing (the codes' diagonal Gaussian).
        return params, {**note, "gamma": float(jnp.exp(params["net"]["log_gamma"]))}

    def log_prob(self, params: dict, z) -> np.ndarray:
        z = _standardize(params, z)
        weights = _apply(self._net(z.shape[-1]), params["net"], z, jax.random.key(0),
                         self.bound_samples)
        bound = jax.nn.logsumexp(weights, axis=0) - jnp.log(self.bound_samples)
        return np.asarray(bound - jnp.sum(jnp.log(params["scale"])), np.float64)

    def sample(self, params: dict, key: jax.Array, num: int) -> jax.Array:
        dim = params["shift"].shape[0]
        u_key, noise_key = jax.random.split(key)
        u = jax.random.normal(u_key, (num, dim))
        noise = jnp.exp(0.5 * params["net"]["log_gamma"]) * jax.random.normal(noise_key, (num, dim))
        return (_apply(self._net(dim), params["net"], u, method="decode") + noise) * params["scale"] + params["shift"]
