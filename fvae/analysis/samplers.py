"""Latent samplers fitted after training: densities over a trained VAE's codes to draw from
instead of its prior (Ghosh et al. 2020; Dai and Wipf 2019), chosen by name from SAMPLERS.

Every sampler has `fit(train, val, seed) -> (params, note)` on codes (N, D), then
`sample(params, key, num)` and `log_prob(params, z)`; `exact_density` says whether log_prob
is the density itself or (two-stage VAE) a lower bound. Fitting is deterministic by seed.
`fit_sampler` returns a `FittedSampler`, a value (settings, params, a note on the fit) to
draw from; `save_sampler`/`load_sampler` keep one in a folder with its SHA-256 digests.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture as _SklearnMixture

from fvae.analysis.flows import RealNVP, TwoStageVAE
from fvae.errors import ConfigError, DamagedFileError
from fvae.files import DIGEST_FILE, read_json, verify_digest, write_bytes, write_digest, write_json


class LatentSampler(Protocol):
    exact_density: bool
    description: str

    def fit(self, train: np.ndarray, val: np.ndarray, seed: int) -> tuple[dict, dict]: ...
    def sample(self, params: dict, key: jax.Array, num: int) -> jax.Array: ...
    def log_prob(self, params: dict, z) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
    """A full-covariance Gaussian mixture fitted by EM (scikit-learn). Component counts are
    tried in the order of `components` until one scores the validation codes no higher than
    the best before it; the best count's mixture is kept."""

    components: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500)
    max_iter: int = 300
    exact_density = True
    description = "Gaussian mixture"

    def fit(self, train: np.ndarray, val: np.ndarray, seed: int) -> tuple[dict, dict]:
        train, val = np.asarray(train, np.float64), np.asarray(val, np.float64)
        scores: dict[int, float] = {}
        best = None
        for count in self.components:
            if count > len(train):
                break
            mixture = _SklearnMixture(count, covariance_type="full", max_iter=self.max_iter, random_state=seed,
                                      reg_covar=1e-6).fit(train)
            scores[count] = float(mixture.score(val))
            if best is not None and scores[count] <= scores[best.n_components]:
                break
            best = mixture
        assert best is not None, "no component count fits so few codes"
        params = {"weights": best.weights_, "means": best.means_, "cholesky": np.linalg.cholesky(best.covariances_)}
        return params, {"components": best.n_components, "val_log_prob": scores[best.n_components],
                        "val_log_prob_by_components": {str(k): v for k, v in scores.items()}}

    def log_prob(self, params: dict, z) -> np.ndarray:
        z = np.asarray(z, np.float64)
        per_component = []
        for weight, mean, chol in zip(params["weights"], params["means"], params["cholesky"]):
            white = np.linalg.solve(chol, (z - mean).T)  # L^-1 (z - m): (D, N)
            per_component.append(np.log(weight) - 0.5 * np.sum(white ** 2, axis=0) - np.sum(np.log(np.diag(chol)))
                                 - 0.5 * z.shape[1] * np.log(2 * np.pi))
        return logsumexp(np.stack(per_component), axis=0)

    def sample(self, params: dict, key: jax.Array, num: int) -> jax.Array:
        component_key, noise_key = jax.random.split(key)
        weights, means, chol = (jnp.asarray(params[k], jnp.float32) for k in ("weights", "means", "cholesky"))
        which = jax.random.categorical(component_key, jnp.log(weights), shape=(num,))
        noise = jax.random.normal(noise_key, (num, means.shape[1]))
        return means[which] + jnp.einsum("nij,nj->ni", chol[which], noise)


SAMPLERS: dict[str, LatentSampler] = {"gmm": GaussianMixture(), "two_stage_vae": TwoStageVAE(), "realnvp": RealNVP()}

PARAMS_FILE, NOTE_FILE = "params.msgpack", "sampler.json"


def settings_of(sampler: LatentSampler) -> dict[str, Any]:
    """A sampler's settings (its dataclass fields) by name."""
    return dataclasses.asdict(sampler)  # type: ignore[call-overload]


def configured_sampler(name: str, settings: Mapping[str, Any] | None = None) -> LatentSampler:
    """SAMPLERS[name] with `settings` in place of its defaults (e.g. {"epochs": 200}), or a
    ConfigError naming every bad setting: unknown keys, numbers that are not positive, sizes
    that are not positive whole numbers, component counts that do not increase."""
    default = SAMPLERS[name]
    fields = {f.name for f in dataclasses.fields(default)}  # type: ignore[arg-type]
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in (settings or {}).items()}
    problems = [f"{name}.{key} is not a setting (it has {', '.join(sorted(fields))})"
                for key in settings if key not in fields]
    for key, value in settings.items():
        default_value = getattr(default, key, None)
        if key not in fields:
            continue
        if isinstance(default_value, tuple):
            if not (value and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
                problems.append(f"{name}.{key} takes positive whole numbers, e.g. {default_value}; got {value!r}")
            elif key == "components" and list(value) != sorted(set(value)):
                problems.append(f"{name}.{key} takes increasing counts, e.g. {default_value}; got {value!r}")
        elif isinstance(default_value, int) and not (isinstance(value, int) and not isinstance(value, bool)
                                                     and value >= 1):
            problems.append(f"{name}.{key} takes a whole number >= 1, e.g. {default_value}; got {value!r}")
        elif isinstance(default_value, float) and not (isinstance(value, int | float) and 0 < value < math.inf):
            problems.append(f"{name}.{key} takes a positive number, e.g. {default_value}; got {value!r}")
    if problems:
        raise ConfigError("; ".join(problems))
    return dataclasses.replace(default, **settings)  # type: ignore[type-var]


@dataclasses.dataclass(frozen=True, eq=False)
class FittedSampler:
    """A latent sampler fitted to one model's codes: its registered name, the sampler with its
    settings, the fitted params and a note on the fit (what `fit` returned, the code counts,
    seconds). A value: draw from it, score codes with it, save it and load it back."""

    name: str
    sampler: LatentSampler
    params: dict
    note: dict

    def sample(self, key: jax.Array, num: int) -> jax.Array:
        return self.sampler.sample(self.params, key, num)

    def log_prob(self, z) -> np.ndarray:
        return self.sampler.log_prob(self.params, z)


def fit_sampler(name: str, sampler: LatentSampler, train: np.ndarray, val: np.ndarray, seed: int) -> FittedSampler:
    """`sampler` (registered as `name`) fitted to the codes `train` (N, D), choosing by `val`;
    deterministic by seed. Writes nothing."""
    start = time.perf_counter()
    params, note = sampler.fit(train, val, seed)
    note = {**note, "training_codes": len(train), "validation_codes": len(val),
            "seconds_fit": time.perf_counter() - start}
    return FittedSampler(name, sampler, params, note)


def save_sampler(folder: Path, fitted: FittedSampler) -> None:
    """Writes a fitted sampler into `folder`: params, a JSON note with its name and settings,
    then the SHA-256 digests (last: a folder without them was never finished)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = jax.tree.map(np.asarray, fitted.params)
    write_bytes(folder / PARAMS_FILE, serialization.msgpack_serialize(serialization.to_state_dict(arrays)))
    write_json(folder / NOTE_FILE, {"sampler": fitted.name, "settings": settings_of(fitted.sampler), **fitted.note})
    write_digest(folder)


def load_sampler(folder: Path) -> FittedSampler:
    """The fitted sampler saved in `folder`, with its saved settings, checked against its digests."""
    if not (folder / DIGEST_FILE).is_file():
        raise DamagedFileError(f"{folder} holds no complete fitted sampler (no {DIGEST_FILE}): delete it to "
                               "fit the sampler again.")
    verify_digest(folder)
    note = read_json(folder / NOTE_FILE)
    name, settings = note.pop("sampler"), note.pop("settings")
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    sampler = type(SAMPLERS[name])(**settings)  # type: ignore[call-arg]
    return FittedSampler(name, sampler, serialization.msgpack_restore((folder / PARAMS_FILE).read_bytes()), note)


def describe_samplers() -> str:
    """One line per registered sampler, for --help."""
    return "; ".join(f"{name}: {sampler.description}" for name, sampler in SAMPLERS.items())


__all__ = ["SAMPLERS", "FittedSampler", "GaussianMixture", "LatentSampler", "RealNVP", "TwoStageVAE",
           "configured_sampler", "describe_samplers", "fit_sampler", "load_sampler", "save_sampler", "settings_of"]
