"""What an evaluation draws: samples, reconstructions, interpolations, traversals, the latent
space and the training curves of a run, into its eval folder."""

from __future__ import annotations

from pathlib import Path

import ml_collections
import numpy as np
from scipy.stats import norm
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from fvae import data, files
from fvae.analysis import plots
from fvae.compute.bounds import decode_pixel_means, reconstruct
from fvae.compute.decoding import generate
from fvae.compute.state import TrainState
from fvae.run import rundir
from fvae.run.assemble import conditioning_labels, run_keys, sample_labels, samples_title


def draw_evaluation_pictures(state: TrainState, config: ml_collections.ConfigDict, splits: data.Splits,
                             test_codes: np.ndarray, kl: list[float], workdir: Path, out: Path,
                             temperatures: tuple[float, ...] = ()) -> list[str]:
    """Writes every picture into the folder `out` (test_codes: the test images' codes; kl: the KL
    per latent dimension; the training curves from `workdir`'s history, if it is a run
    directory; samples_t<T>.png, the same draws at each of `temperatures`); returns their
    file names in report order."""
    sample_key = run_keys(config.seed)["sample"]
    names = data.CLASS_NAMES
    test_images, test_labels = splits.test
    written = []

    def saved(name):
        written.append(name)
        return out / name

    def given(labels):  # Labels for a conditional model, None otherwise.
        return conditioning_labels(config, np.asarray(labels, np.int32))

    plots.save_image_grid(saved("samples.png"), np.asarray(generate(state, sample_key, 64,
                                                                    sample_labels(config, 64))),
                          samples_title(config))
    for temperature in temperatures:
        plots.save_image_grid(saved(f"samples_t{temperature:g}.png"),
                              np.asarray(generate(state, sample_key, 64, sample_labels(config, 64), temperature)),
                              f"{samples_title(config)}, temperature {temperature:g}")
    if config.model.conditional:
        # 10 samples of each class, one class per row.
        per_class = np.repeat(np.arange(data.NUM_CLASSES, dtype=np.int32), 10)
        plots.save_image_grid(saved("class_conditional.png"), np.asarray(generate(state, sample_key, 100,
                                                                                  per_class)),
                              "10 samples of each class (one class per row)", columns=10,
                              labels=[names[c] if i % 10 == 0 else "" for i, c in enumerate(per_class)])
    plots.save_reconstructions(saved("reconstructions.png"), test_images[:32] / 255.0,
                               np.asarray(reconstruct(state, test_images[:32], given(test_labels[:32]))),
                               labels=[names[i] for i in test_labels[:32]])

    # Interpolation between pairs of test images of different classes.
    starts = [int(np.flatnonzero(test_labels == c)[0]) for c in range(0, 10, 2)]
    ends = [int(np.flatnonzero(test_labels == c + 1)[0]) for c in range(0, 10, 2)]
    weights = np.linspace(0, 1, 10)[:, None]
    rows = []
    for a, b in zip(starts, ends):
        line = (1 - weights) * test_codes[a] + weights * test_codes[b]
        decoded = np.asarray(decode_pixel_means(state, line, given(np.full(len(line), test_labels[a]))))
        rows.append(np.concatenate([test_images[a:a + 1] / 255.0, decoded, test_images[b:b + 1] / 255.0]))
    plots.save_interpolations(saved("interpolations.png"), np.stack(rows), [names[test_labels[i]] for i in starts],
                              [names[test_labels[i]] for i in ends])

    # Traversals of the dimensions with the most KL, around the first test image's code.
    dims = list(np.argsort(kl)[::-1][:min(8, len(kl))])
    values = np.linspace(-3, 3, 9)
    grid = []
    for d in dims:
        z = np.repeat(test_codes[:1], len(values), axis=0)
        z[:, d] = values
        grid.append(np.asarray(decode_pixel_means(state, z, given(np.full(len(z), test_labels[0])))))
    plots.save_traversals(saved("traversals.png"), np.stack(grid), values, dims, [kl[d] for d in dims])

    if test_codes.shape[1] == 2:
        quantiles = norm.ppf(np.linspace(0.05, 0.95, 15))
        z1, z2 = np.meshgrid(quantiles, quantiles[::-1])
        z = np.stack([z1.ravel(), z2.ravel()], axis=1)
        decoded = np.asarray(decode_pixel_means(state, z, given(np.full(len(z), 0))))
        plots.save_manifold(saved("manifold.png"), decoded.reshape(15, 15, -1), quantiles)
        plots.save_latent_scatter(saved("latent_scatter.png"), test_codes, test_labels, names,
                                  "Test posterior means (2-D latent space)")
    else:
        plots.save_latent_scatter(saved("latent_pca.png"), PCA(2).fit_transform(test_codes), test_labels, names,
                                  "Test posterior means, first two principal components")
        subset = slice(0, 2000)
        embedded = TSNE(2, init="pca", random_state=0).fit_transform(test_codes[subset])
        plots.save_latent_scatter(saved("latent_tsne.png"), embedded, test_labels[subset], names,
                                  "Test posterior means, t-SNE (first 2,000 test images)")

    history = rundir.load_history(workdir)
    if history:
        best = files.read_json(workdir / rundir.TEST_METRICS_FILE)["best_epoch"] \
            if (workdir / rundir.TEST_METRICS_FILE).is_file() else None
        plots.save_training_curves(saved("training_curves.png"), history, best)
    return written
