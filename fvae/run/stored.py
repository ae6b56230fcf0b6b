"""Stored models: a trained run's parameters in a small folder that research code loads in one
call (`load_model`) and experiments.evaluate evaluates without the run directory.

A stored model is written once (`export_model` refuses an existing folder and writes into a
temporary one renamed into place): the best checkpoint's parameters as float32 msgpack, the
run's config.json and versions.json, 100 test images and their negative ELBO under a fixed key
(a check that what is loaded computes what was stored), and the SHA-256 of every file.
Samplers fitted later are kept in its `samplers/` folder, outside the recorded digests.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import serialization

from fvae.compute.bounds import evaluate_bound
from fvae.compute.state import TrainState
from fvae.errors import ConfigError, DamagedFileError, RunDirError
from fvae.files import (
    DIGEST_FILE,
    new_folder,
    read_json,
    verify_digest,
    write_bytes,
    write_digest,
    write_json,
    write_npy,
)
from fvae.models import VAE, build_model
from fvae.run import rundir
from fvae.run.assemble import initial_state, load_run_state, load_splits
from fvae.run.config import with_defaults
from fvae.run.versions import VERSIONS_FILE

PARAMS_FILE = "params.msgpack"
REFERENCE_FILE, REFERENCE_IMAGES = "reference.json", "reference_images.npy"
REFERENCE_COUNT = 100


def is_stored_model(path: str | Path) -> bool:
    """Whether `path` is a stored model's folder (rather than a run directory): it has the
    parameters, or the reference evaluation that only an export writes (a stored model that
    lost its parameters is a damaged stored model, not a run that never trained)."""
    return (Path(path) / PARAMS_FILE).is_file() or (Path(path) / REFERENCE_FILE).is_file()


def output_folder(path: str | Path, out: str | Path | None, default: str) -> Path:
    """Where a command writes what it makes of the model at `path`: `out`, else PATH/`default`
    for a run directory; a stored model (written once) needs `out`."""
    if out is not None:
        return Path(out)
    if is_stored_model(path):
        raise ConfigError(f"{path} is a stored model: say where the output goes with --out.")
    return Path(path) / default


def reference_loss(state: TrainState, images: np.ndarray) -> float:
    """The mean negative ELBO of `images` under jax.random.key(0): the stored check value."""
    return float(evaluate_bound(state, jax.device_put(images), jax.random.key(0))["loss"])


def export_model(workdir: str | Path, out: str | Path) -> Path:
    """Stores the best checkpoint of the run in `workdir` as a model folder `out` (new)."""
    workdir, out = Path(workdir), Path(out)
    if out.exists():
        raise RunDirError(f"{out} exists: a stored model is written once; choose another --out.")
    config, state = load_run_state(workdir)
    if config.model.conditional:
        raise RunDirError(f"{workdir} is a conditional VAE: stored models hold unconditional ones.")
    params = jax.tree.map(lambda a: np.asarray(a, np.float32), state.params)
    state = state.replace(params=params)
    images = load_splits(config).test.images[:REFERENCE_COUNT]
    with new_folder(out) as partial:  # Renamed into place: never a half-written model.
        write_bytes(partial / PARAMS_FILE, serialization.to_bytes(params))
        for name in (rundir.CONFIG_FILE, VERSIONS_FILE):
            write_bytes(partial / name, (workdir / name).read_bytes())
        write_npy(partial / REFERENCE_IMAGES, images)
        write_json(partial / REFERENCE_FILE, {
            "images": f"the first {REFERENCE_COUNT} test images as evaluated ({REFERENCE_IMAGES})",
            "key": "jax.random.key(0)", "negative_elbo": reference_loss(state, images),
            "exported_from": workdir.name, "step": int(state.step)})
        write_digest(partial)
    return out


def load_stored(path: str | Path) -> tuple[ml_collections.ConfigDict, TrainState]:
    """The config and a TrainState holding the stored parameters (for fvae's evaluation functions)."""
    path = Path(path)
    if not is_stored_model(path) or not (path / DIGEST_FILE).is_file():
        raise RunDirError(f"{path} holds no stored model ({PARAMS_FILE} or {DIGEST_FILE} is missing).")
    if not (path / PARAMS_FILE).is_file():
        raise DamagedFileError(f"{path} is a stored model without its {PARAMS_FILE}: restore the folder (e.g. git "
                               "checkout), or export the model again from its run directory.")
    verify_digest(path)
    config = with_defaults(read_json(path / rundir.CONFIG_FILE))
    state = initial_state(config)
    try:
        params = serialization.from_bytes(state.params, (path / PARAMS_FILE).read_bytes())
    except Exception as err:  # noqa: BLE001 (a file that does not fit the model is damaged)
        raise DamagedFileError(f"{path / PARAMS_FILE} does not hold this model's parameters ({err}).") from None
    expected, stored = (jax.tree_util.tree_flatten_with_path(jax.tree.map(np.shape, p))[0]
                        for p in (state.params, params))
    wrong = [f"{jax.tree_util.keystr(k)}: stored {b}, config {a}" for (k, a), (_, b) in zip(expected, stored) if a != b]
    if wrong:
        raise DamagedFileError(f"{path / PARAMS_FILE} does not fit {path / rundir.CONFIG_FILE} "
                               f"({'; '.join(wrong[:3])}): the config was edited, or belongs to another model. "
                               "Restore the folder's own config.json, or export the model again.")
    return config, state.replace(params=params)


def load_model(path: str | Path) -> tuple[VAE, Mapping[str, Any]]:
    """The model and its parameters stored in `path` (checked against their SHA-256):

        model, params = fvae.load_model("results/models/gated_vae")
        out = model.apply({"params": params}, images, jax.random.key(0))  # a VAEOutput
    """
    config, state = load_stored(path)
    return build_model(config), state.params


def load_trained(path: str | Path, which: str = "best") -> tuple[ml_collections.ConfigDict, TrainState]:
    """A stored model's or a run directory's (its `which` checkpoint) config and state."""
    return load_stored(path) if is_stored_model(path) else load_run_state(path, which)
