"""Components chosen by name: the likelihoods, priors and architectures of fvae, their base
classes and the registries' machinery.

A registry maps a name to a class. Each class is a frozen dataclass whose fields are its
own config keys, with their defaults, in its config section (`likelihood`, `prior`,
`model`); `check(section)` lists what is wrong with their values, and
`from_config(section)` builds the instance. fvae.run.config assembles the schema from the
registries. The base classes live here, not beside their registries, so that a new component
can be a module of its own: it imports its base from here, and its registry imports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


class Component:
    """Base of every registered class: name, config fields (the dataclass fields), checks."""

    name = ""  # The registry key, set by each class.

    @classmethod
    def config_fields(cls) -> dict[str, Any]:
        """{key: default} of this class's own keys in its config section."""
        return {f.name: f.default for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # subclasses are dataclasses

    @classmethod
    def check(cls, section) -> list[str]:
        """Problems with this class's values in `section` (the types are already checked)."""
        del section
        return []

    @classmethod
    def from_config(cls, section):
        """The instance that `section` (e.g. config.likelihood) describes."""
        return cls(**{key: section[key] for key in cls.config_fields()})


def registry(*classes: type[Component]) -> dict[str, type[Component]]:
    """{name: class}; refuses duplicate names."""
    table: dict[str, type[Component]] = {}
    for cls in classes:
        if cls.name in table:
            raise ValueError(f"two classes registered as {cls.name!r}: {table[cls.name].__name__}, {cls.__name__}")
        table[cls.name] = cls
    return table


def section_fields(table: dict[str, type[Component]], chosen: str | None = None) -> dict[str, Any]:
    """The union of the registered classes' config fields: {key: default}. Classes may share a
    key with different defaults (an MLP-encoder, conv-decoder model may want `upsample`
    "transpose" where `conv` has "pixel_shuffle"): the `chosen` class's defaults come first, then
    the others' in registration order. A shared key must keep one type (one schema per section)."""
    fields: dict[str, Any] = {}
    order = ([table[chosen]] if chosen in table else []) + list(table.values())
    for cls in order:
        for key, default in cls.config_fields().items():
            if key in fields and type(fields[key]) is not type(default):
                raise ValueError(f"config key {key!r} is declared as {type(fields[key]).__name__} and "
                                 f"{type(default).__name__} (by {cls.__name__} and another class): give it one type")
            fields.setdefault(key, default)
    return fields


def lookup(table: dict[str, type[Component]], name: str, key: str) -> type[Component]:
    """The class registered as `name`; a ValueError naming config `key` and the choices if none."""
    if name not in table:
        raise ValueError(f"{key} must be one of {tuple(table)}, got {name!r}")
    return table[name]


class Likelihood(Component):
    """What every likelihood declares besides log_prob and mean (these are the defaults), so
    that models and data preparation never test which likelihood they hold."""

    params_per_pixel = 1  # Channels per pixel of `params`.
    discrete = False      # A probability mass over the data's discrete values (bits/dim defined).
    support = "real"      # Where one pixel's density lives: "binary" {0, 1}, "levels" {k/255},
    #                       "unit_interval" [0, 1] or "real"; it sums or integrates to one there.
    global_scale = False  # True: the VAE, not the decoder, supplies the last channel (one learned scale)

    def training_pixels(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """The pixels a training step scores (B, 784) in [0, 1]: x itself unless resampled."""
        del key
        return x

    def evaluation_images(self, images: np.ndarray, stream: int) -> np.ndarray:
        """The uint8 images of one evaluation split (stream 1: validation, 2: test) that this
        likelihood is evaluated on: the images themselves unless fixed once (by seed)."""
        del stream
        return images

    def log_prob(self, params: jax.Array, x: jax.Array) -> jax.Array:
        """log p(x|z) summed over pixels: params (B, D, P), x (B, D) in [0, 1] -> (B,)."""
        raise NotImplementedError

    def mean(self, params: jax.Array) -> jax.Array:
        """E[x|z] per pixel (B, D) in [0, 1]."""
        raise NotImplementedError


PseudoPosteriors = Callable[[], tuple[jax.Array, jax.Array]]


class Prior(Component):
    """What every prior declares; the defaults suit a fixed density."""

    pseudo_inputs = 0    # Learned pseudo-inputs (pseudo_inputs, 784) the VAE holds for this prior.
    analytic_kl = False  # KL(N(mean, var) || p) per latent in closed form (free bits need it).
    conditional = True   # Usable in a label-conditional VAE.
    description = ""     # For picture titles: "Samples from <description>".

    def log_prob(self, z: jax.Array, pseudo_posteriors: PseudoPosteriors) -> jax.Array:
        """log p(z) summed over latents: (..., D) -> (...)."""
        raise NotImplementedError

    def sample(self, key: jax.Array, num: int, latents: int, pseudo_posteriors: PseudoPosteriors,
               temperature: float = 1.0) -> jax.Array:
        """`num` draws from p, its noise scaled by `temperature` (1: p itself): (num, latents)."""
        raise NotImplementedError


class Architecture(Component):
    """What every architecture declares; `build` makes the Flax VAE."""

    conditional = True   # Can be conditional on the class label (model.conditional).
    analytic_kl = True   # One Gaussian latent layer: per-latent KL in closed form (with such a prior).

    def build(self, model, likelihood, prior):
        """The VAE (an fvae.models.VAE) for config section `model` with this likelihood and prior."""
        raise NotImplementedError

    def dense_layers(self, model) -> list[tuple[int, int]] | None:
        """(fan_in, fan_out) of every Dense layer the model is made of, for the benchmark's
        matmul ceiling; None when it has other layers."""
        return None
