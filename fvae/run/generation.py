"""New images from a trained model (a run directory or a stored model): its prior, or a latent
sampler fitted to its codes after training (fvae.analysis.samplers), scored side by side and
drawn on one sheet; and the sample grids of experiments.sample.

A sampler is fitted once on one posterior draw of the top latent layer for every training
image (binarized once, like the evaluation images, where the likelihood binarizes): draws of
the aggregate posterior q(z) = E_x q(z | x), which is what the decoder was trained to decode
and what the prior should have matched. Posterior means would be a narrower cloud than the
one the decoder saw. The validation images' draws choose the mixture's component count and
the networks' best epoch. The fitted sampler is kept in PATH/samplers/NAME and reloaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import jax
import ml_collections
import numpy as np

from fvae import data
from fvae.analysis import plots
from fvae.analysis.sample_scores import SCORE_IMAGES, class_accuracy, score_images
from fvae.analysis.samplers import SAMPLERS, LatentSampler, configured_sampler, load_sampler, save_sampler, settings_of
from fvae.compute.decoding import decode_top_samples, generate, generate_many, posterior_top_samples
from fvae.compute.state import TrainState
from fvae.errors import ConfigError
from fvae.files import new_folder
from fvae.models.likelihoods import build_likelihood
from fvae.run import stored
from fvae.run.assemble import load_splits, run_keys, sample_labels, sample_quality_classifier, stored_split

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


def fitted_sampler(path: str | Path, config: ml_collections.ConfigDict, state: TrainState, name: str,
                   sampler: LatentSampler, log: Callable[[str], None] = print) -> tuple[dict, dict]:
    """(params, note) of `sampler` (registered as `name`) for the model at `path`: loaded from
    PATH/samplers/NAME, or fitted (deterministic by config.seed) and saved there first. One
    fitted with other settings is refused, never replaced."""
    folder = Path(path) / SAMPLERS_DIR / name
    if folder.exists():
        saved, params, note = load_sampler(folder)
        if saved != sampler:
            asked, has = settings_of(sampler), settings_of(saved)
            differ = ", ".join(f"{k} {v!r} (it has {has[k]!r})" for k, v in asked.items() if has[k] != v)
            raise ConfigError(f"{folder} was fitted with other settings than asked: {differ}. Delete that folder to "
                              f"fit {name} again with these, or ask for the settings it has")
        return params, note
    splits, likelihood = load_splits(config), build_likelihood(config.likelihood)
    key = jax.random.fold_in(run_keys(config.seed)["sample"], 1)
    train = np.asarray(posterior_top_samples(state, likelihood.evaluation_images(splits.train.images, 3), key))
    val = np.asarray(posterior_top_samples(state, splits.val.images, jax.random.fold_in(key, 1)))
    log(f"Fitting the {sampler.description} to {len(train)} training codes ({train.shape[1]} latents) ...")
    start = time.perf_counter()
    params, note = sampler.fit(train, val, config.seed)
    note = {**note, "codes": CODES, "training_codes": len(train), "validation_codes": len(val),
            "seconds_fit": time.perf_counter() - start}
    with new_folder(folder) as partial:  # Never a half-written sampler.
        save_sampler(partial, name, sampler, params, note)
    return params, note


def generated_images(path: str | Path, config: ml_collections.ConfigDict, state: TrainState, key: jax.Array,
                     num: int, sampler: tuple[str, LatentSampler] | None = None, log: Callable[[str], None] = print,
                     temperature: float = 1.0) -> np.ndarray:
    """Pixel means (num, 784) of `num` draws from the prior (sampler None: what
    fvae.compute.generate_many draws with `key`) or from a fitted sampler (name, sampler),
    decoded 1,000 at a time (chunk i completes the lower layers with fold_in(key, i + 1)).
    `temperature` scales the noise of the prior's every layer, or of the layers below a
    sampler's top-layer draws."""
    if sampler is None:
        return np.asarray(generate_many(state, key, num, sample_labels(config, num), temperature=temperature))
    name, chosen = sampler
    params, _ = fitted_sampler(path, config, state, name, chosen, log)
    return _sampler_images(state, chosen, params, key, num, temperature)


def _sampler_images(state: TrainState, sampler: LatentSampler, params: dict, key: jax.Array, num: int,
                    temperature: float = 1.0) -> np.ndarray:
    top = sampler.sample(params, jax.random.fold_in(key, 0), num)
    return np.concatenate([np.asarray(decode_top_samples(state, jax.random.fold_in(key, i + 1), top[s:s + 1000],
                                                         temperature))
                           for i, s in enumerate(range(0, num, 1000))])


def sample_quality(path: str | Path, config: ml_collections.ConfigDict, state: TrainState,
                   samplers: Mapping[str, LatentSampler] | None = None, retrain_classifier: bool = False,
                   log: Callable[[str], None] = print) -> dict:
    """Frechet distance, precision and recall of the prior's and each sampler's SCORE_IMAGES
    samples (pixel means) against as many grey test images, in the classifier's features
    (fvae.analysis.sample_scores); for conditional models also the classifier's accuracy on
    class-conditional samples. The prior's scores are the top-level keys (flat, beside the
    other metrics); "samplers" holds the others', with how each was fitted."""
    samplers = samplers or {}
    check_generators(list(samplers), config)
    classifier, which = sample_quality_classifier(config, retrain_classifier, log)
    test = stored_split(config, "test")
    num = min(SCORE_IMAGES, test.num_examples)
    key = run_keys(config.seed)["sample"]
    prior = generated_images(path, config, state, key, num, log=log)
    metrics = {**score_images(classifier, prior, test.images, num), "classifier": which,
               "classifier_test_accuracy": class_accuracy(classifier, test.images, test.labels)}
    labels = sample_labels(config, num)
    if labels is not None:
        metrics["class_conditional_accuracy"] = class_accuracy(classifier, prior, labels)
    if samplers:
        metrics["samplers"] = {}
    for name, sampler in samplers.items():
        params, note = fitted_sampler(path, config, state, name, sampler, log)  # Loaded (or fitted) once.
        images = _sampler_images(state, sampler, params, key, num)
        metrics["samplers"][name] = {**score_images(classifier, images, test.images, num),
                                     "fit": {k: v for k, v in note.items() if k != "codes"}}
    return metrics


def comparison_sheet(out: Path, path: str | Path, config: ml_collections.ConfigDict, state: TrainState,
                     samplers: Mapping[str, LatentSampler], seed: int = 0, per_row: int = 8, rows: int = 2) -> Path:
    """One picture of `rows` x `per_row` images from the prior and from each of `samplers`,
    every one drawn with the same key, labelled by name."""
    count = per_row * rows
    draws = {PRIOR: None, **{name: (name, sampler) for name, sampler in samplers.items()}}
    images = [generated_images(path, config, state, jax.random.key(seed), count, draw) for draw in draws.values()]
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
        images = generated_images(path, config, state, key, num, (sampler, chosen[sampler]), temperature=temperature)
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
