"""New images from a trained model (a run directory or a stored model): its prior, or a latent
sampler fitted to its codes after training (fvae.analysis.samplers), scored side by side and
drawn on one sheet; and the sample grids of experiments.sample.

A sampler is fitted once on one posterior draw of the top latent layer for every training
image (binarized once, like the evaluation images, where the likelihood binarizes): draws of
the aggregate posterior q(z) = E_x q(z | x), which is what the decoder was trained to decode
and what the prior should have matched. Posterior means would be a narrower cloud than the
one the decoder saw. The validation images' draws choose the mixture's component count and
the networks' best epoch. `fit_samplers` computes fitted samplers (values, no file written);
`fitted_samplers` keeps them in PATH/samplers/NAME and reloads them; every other function takes
the values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
import ml_collections
import numpy as np

from fvae import data
from fvae.analysis import plots
from fvae.analysis.sample_scores import SCORE_IMAGES, class_accuracy, score_images
from fvae.analysis.samplers import (
    SAMPLERS,
    FittedSampler,
    LatentSampler,
    configured_sampler,
    fit_sampler,
    load_sampler,
    save_sampler,
    settings_of,
)
from fvae.compute.decoding import decode_top_samples, generate, generate_many, posterior_top_samples
from fvae.compute.state import TrainState
from fvae.errors import ConfigError
from fvae.files import new_folder
from fvae.models.likelihoods import build_likelihood
from fvae.run import stored
from fvae.run.assemble import load_splits, run_keys, sample_labels

PRIOR = "prior"
SAMPLERS_DIR = "samplers"
CODES = ("one posterior draw of the top latent layer per image (training images binarized once where the "
         "likelihood binarizes)")


def sampler_settings() -> ml_collections.ConfigDict:
    """Every registered sampler's settings at their defaults, {name: {setting: value}}: what
    --sampler_config.NAME.SETTING=VALUE overrides."""
    return ml_collections.ConfigDict({name: settings_of(sampler) for name, sampler in SAMPLERS.items()})


def check_generators(names: Sequence[str], config: ml_collections.ConfigDict | None = None) -> None:
    """Refuses unknown sampler names, and samplers for a conditional model (they ignore labels)."""
    unknown = [n for n in names if n != PRIOR and n not in SAMPLERS]
    if unknown:
        raise ConfigError(f"unknown sampler {', '.join(unknown)}: choose from {', '.join([PRIOR, *SAMPLERS])}")
    if config is not None and config.model.conditional and any(n != PRIOR for n in names):
        raise ConfigError("latent samplers draw codes without a label: a conditional VAE samples from its prior only")


def chosen_samplers(names: Sequence[str], settings: Mapping[str, Mapping] | None = None,
                    config: ml_collections.ConfigDict | None = None) -> dict[str, LatentSampler]:
    """The samplers `names` (the prior, PRIOR, is not one) with their `settings` ({name: {setting:
    value}}, defaults where not given), checked as check_generators checks names, and every
    bad setting named in one ConfigError."""
    check_generators(names, config)
    settings = settings or {}
    return {name: configured_sampler(name, settings.get(name)) for name in names if name != PRIOR}


def sampler_codes(state: TrainState, config: ml_collections.ConfigDict,
                  splits: data.Splits) -> tuple[np.ndarray, np.ndarray]:
    """(training codes, validation codes) the samplers are fitted to: one posterior draw of the
    top latent layer per image (CODES), deterministic by config.seed."""
    likelihood = build_likelihood(config.likelihood)
    key = jax.random.fold_in(run_keys(config.seed)["sample"], 1)
    train = np.asarray(posterior_top_samples(state, likelihood.evaluation_images(splits.train.images, 3), key))
    val = np.asarray(posterior_top_samples(state, splits.val.images, jax.random.fold_in(key, 1)))
    return train, val


def fit_samplers(state: TrainState, config: ml_collections.ConfigDict, splits: data.Splits,
                 samplers: Mapping[str, LatentSampler], log: Callable[[str], None] = print) -> dict[str, FittedSampler]:
    """Each of `samplers` fitted to the model's codes (sampler_codes, computed once for all):
    values, no file written."""
    check_generators(list(samplers), config)
    if not samplers:
        return {}
    train, val = sampler_codes(state, config, splits)
    fitted = {}
    for name, sampler in samplers.items():
        log(f"Fitting the {sampler.description} to {len(train)} training codes ({train.shape[1]} latents) ...")
        done = fit_sampler(name, sampler, train, val, config.seed)
        fitted[name] = dataclasses.replace(done, note={**done.note, "codes": CODES})
    return fitted


def fitted_samplers(path: str | Path, config: ml_collections.ConfigDict, state: TrainState,
                    samplers: Mapping[str, LatentSampler], splits: data.Splits | None = None,
                    log: Callable[[str], None] = print) -> dict[str, FittedSampler]:
    """`samplers` fitted for the model at `path`: each loaded from PATH/samplers/NAME, or fitted
    (fit_samplers, on `splits`, read only if one is missing and none given) and saved there
    first. One fitted with other settings is refused, never replaced."""
    check_generators(list(samplers), config)
    kept, missing = {}, {}
    for name, sampler in samplers.items():
        folder = Path(path) / SAMPLERS_DIR / name
        if not folder.exists():
            missing[name] = sampler
            continue
        kept[name] = load_sampler(folder)
        if kept[name].sampler != sampler:
            asked, has = settings_of(sampler), settings_of(kept[name].sampler)
            differ = ", ".join(f"{k} {v!r} (it has {has[k]!r})" for k, v in asked.items() if has[k] != v)
            raise ConfigError(f"{folder} was fitted with other settings than asked: {differ}. Delete that folder to "
                              f"fit {name} again with these, or ask for the settings it has")
    if missing:
        new = fit_samplers(state, config, splits or load_splits(config), missing, log)
        for name, fitted in new.items():
            with new_folder(Path(path) / SAMPLERS_DIR / name) as partial:  # Never a half-written sampler.
                save_sampler(partial, fitted)
        kept.update(new)
    return {name: kept[name] for name in samplers}


def generated_images(state: TrainState, config: ml_collections.ConfigDict, key: jax.Array, num: int,
                     sampler: FittedSampler | None = None, temperature: float = 1.0) -> np.ndarray:
    """Pixel means (num, 784) of `num` draws from the prior (sampler None: what
    fvae.compute.generate_many draws with `key`) or from a fitted sampler, decoded 1,000 at a
    time (chunk i completes the lower layers with fold_in(key, i + 1)). `temperature` scales
    the noise of the prior's every layer, or of the layers below a sampler's top-layer draws."""
    if sampler is None:
        return np.asarray(generate_many(state, key, num, sample_labels(config, num), temperature=temperature))
    top = sampler.sample(jax.random.fold_in(key, 0), num)
    return np.concatenate([np.asarray(decode_top_samples(state, jax.random.fold_in(key, i + 1), top[s:s + 1000],
                                                         temperature))
                           for i, s in enumerate(range(0, num, 1000))])


def sample_quality(state: TrainState, config: ml_collections.ConfigDict, test: data.Dataset,
                   classifier: tuple[dict, str], samplers: Mapping[str, FittedSampler] | None = None) -> dict:
    """Frechet distance, precision and recall of the prior's and each fitted sampler's
    SCORE_IMAGES samples (pixel means) against as many grey `test` images (stored_data), in the
    features of `classifier` (params, which: assemble.sample_quality_classifier); for
    conditional models also the classifier's accuracy on class-conditional samples. The
    prior's scores are the top-level keys (flat, beside the other metrics); "samplers" holds
    the others', with how each was fitted. Writes nothing."""
    samplers = samplers or {}
    params, which = classifier
    num = min(SCORE_IMAGES, test.num_examples)
    key = run_keys(config.seed)["sample"]
    prior = generated_images(state, config, key, num)
    metrics = {**score_images(params, prior, test.images, num), "classifier": which,
               "classifier_test_accuracy": class_accuracy(params, test.images, test.labels)}
    labels = sample_labels(config, num)
    if labels is not None:
        metrics["class_conditional_accuracy"] = class_accuracy(params, prior, labels)
    if samplers:
        metrics["samplers"] = {}
    for name, fitted in samplers.items():
        images = generated_images(state, config, key, num, fitted)
        fit = {"sampler": name, "settings": settings_of(fitted.sampler),
               **{k: v for k, v in fitted.note.items() if k != "codes"}}
        metrics["samplers"][name] = {**score_images(params, images, test.images, num), "fit": fit}
    return metrics


def comparison_sheet(out: Path, state: TrainState, config: ml_collections.ConfigDict,
                     samplers: Mapping[str, FittedSampler], seed: int = 0, per_row: int = 8, rows: int = 2) -> Path:
    """One picture of `rows` x `per_row` images from the prior and from each fitted sampler,
    every one drawn with the same key, labelled by name."""
    count = per_row * rows
    draws: dict[str, FittedSampler | None] = {PRIOR: None, **samplers}
    images = [generated_images(state, config, jax.random.key(seed), count, draw) for draw in draws.values()]
    labels = [name if i % per_row == 0 else "" for name in draws for i in range(count)]
    plots.save_image_grid(out, np.concatenate(images), f"{count} samples each, seed {seed}", per_row, labels)
    return out


def sample_grid(path: str | Path, label: str | int | None = None, num: int = 64, seed: int = 0,
                sampler: str = PRIOR, out_dir: str | Path | None = None, temperature: float = 1.0,
                settings: Mapping[str, Mapping] | None = None) -> Path:
    """Writes a grid of `num` samples of the model at `path` (a run directory or a stored model)
    into `out_dir` (default PATH/samples; required for a stored model): of class `label` for a
    conditional model, from the fitted sampler `sampler` if named (with `settings`, as
    chosen_samplers takes them), at `temperature` (the noise
    of every layer drawn from the model scaled by it; the name gets _t<T> unless it is 1).
    Returns the picture's path; the same arguments give the same picture."""
    if not (temperature > 0 and np.isfinite(temperature)):
        raise ConfigError(f"the temperature must be a positive number, got {temperature!r}: 1 samples the model "
                          "itself, less than 1 (e.g. 0.7) sharper and less varied images")
    out_dir = stored.output_folder(path, out_dir, "samples")
    chosen = chosen_samplers([sampler], settings)
    config, state = stored.load_trained(path)
    conditional = config.model.conditional
    if label is not None and not conditional:
        raise ConfigError(f"{path} is not a conditional VAE (model.conditional is False): omit --label, or "
                          "train one with experiments/configs/conditional.py")
    check_generators([sampler], config)
    index = data.parse_label(label) if label is not None else None
    key = jax.random.key(seed)
    if sampler != PRIOR:
        fitted = fitted_samplers(path, config, state, chosen)[sampler]
        images = generated_images(state, config, key, num, fitted, temperature)
        name, title = f"{sampler}_n{num}_seed{seed}", f"{num} samples of the {SAMPLERS[sampler].description}"
    else:
        labels = np.full(num, index, np.int32) if index is not None else sample_labels(config, num)
        images = np.asarray(generate(state, key, num, labels, temperature))
        stem = "all_classes" if index is None and conditional else (
            "prior" if index is None else data.CLASS_NAMES[index].replace("/", "-"))
        name = f"{stem}_n{num}_seed{seed}"
        title = f"{num} samples of class {data.CLASS_NAMES[index]}" if index is not None else f"{num} prior samples"
    if temperature != 1:
        name, title = f"{name}_t{temperature:g}", f"{title}, temperature {temperature:g}"
    out = out_dir / f"{name}.png"
    out_dir.mkdir(parents=True, exist_ok=True)
    plots.save_image_grid(out, images, title)
    return out
