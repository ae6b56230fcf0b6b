"""PNG pictures of a run: image grids with titles (matplotlib, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt  # Falls back to the Agg backend where there is no display.
import numpy as np

from fvae.files import write_bytes


def _as_images(pixels: np.ndarray) -> np.ndarray:
    """(N, 784) or (N, 28, 28, 1) values in [0, 1] -> (N, 28, 28)."""
    return np.asarray(pixels, dtype=np.float32).reshape(len(pixels), 28, 28)


def _save(fig, path) -> None:
    """The figure as a PNG, written atomically (fvae.files)."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format="png")
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def _grid_canvas(images: np.ndarray, columns: int, band: int, gap: int = 2) -> tuple[np.ndarray, tuple[int, int]]:
    """(N, 28, 28) images -> one white canvas with image i at row i // columns, column i % columns,
    `band` blank pixels above each (for its label) and `gap` between; also the (y, x) pitch."""
    rows = -(-len(images) // columns)
    pitch_y, pitch_x = 28 + gap + band, 28 + gap
    canvas = np.ones((rows * pitch_y, columns * pitch_x), np.float32)
    for i, image in enumerate(images):
        top, left = (i // columns) * pitch_y + band, (i % columns) * pitch_x
        canvas[top:top + 28, left:left + 28] = image
    return canvas, (pitch_y, pitch_x)


def save_image_grid(path: str | Path, pixels: np.ndarray, title: str, columns: int = 8,
                    labels: Sequence[str] | None = None) -> None:
    """Saves images (values in [0, 1]) as a grid with a title and optional per-image labels.

    One axes holds the whole grid (white gaps, labels in a band above each image): a subplot per
    image took about 1.5 s per picture."""
    images = _as_images(pixels)
    rows = -(-len(images) // columns)
    band = 9 if labels is not None else 0
    canvas, (pitch_y, pitch_x) = _grid_canvas(images, columns, band)
    fig, ax = plt.subplots(figsize=(1.3 * columns, (1.45 if labels is not None else 1.2) * rows + 0.5))
    ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.axis("off")
    for i, label in enumerate(labels or ()):
        ax.text((i % columns) * pitch_x + 14, (i // columns) * pitch_y + band - 1, label, fontsize=7,
                ha="center", va="bottom")
    fig.suptitle(title)
    _save(fig, path)


def save_reconstructions(path: str | Path, originals: np.ndarray, reconstructions: np.ndarray,
                         labels: Sequence[str] | None = None, columns: int = 8) -> None:
    """Saves test images (odd rows) above their reconstructions (even rows)."""
    originals, reconstructions = _as_images(originals), _as_images(reconstructions)
    interleaved, names = [], []
    for start in range(0, len(originals), columns):
        chunk = slice(start, start + columns)
        interleaved += [*originals[chunk], *reconstructions[chunk]]
        chunk_labels = list(labels[chunk]) if labels is not None else [""] * len(originals[chunk])
        names += chunk_labels + ["reconstruction"] * len(chunk_labels)
    save_image_grid(path, np.stack(interleaved), "Test images (above) and reconstructions (below)",
                    columns=columns, labels=names)


def _mosaic(images: np.ndarray) -> np.ndarray:
    """(rows, cols, 784 or 28x28) values in [0, 1] -> one (rows*28, cols*28) picture."""
    rows, cols = images.shape[:2]
    tiles = np.asarray(images, np.float32).reshape(rows, cols, 28, 28)
    return tiles.transpose(0, 2, 1, 3).reshape(rows * 28, cols * 28)


def save_interpolations(path: str | Path, images: np.ndarray, start_names: Sequence[str],
                        end_names: Sequence[str]) -> None:
    """Rows of decoded images along straight lines between pairs of test images' latent means.

    images: (pairs, steps, 784) with the real start and end images in the first and last columns.
    """
    pairs, steps = images.shape[:2]
    fig, ax = plt.subplots(figsize=(0.75 * steps + 2.5, 0.75 * pairs + 0.8))
    ax.imshow(_mosaic(images), cmap="gray", vmin=0, vmax=1)
    ax.set_yticks([28 * i + 14 for i in range(pairs)], [f"{a} → {b}" for a, b in zip(start_names, end_names)],
                  fontsize=8)
    ax.set_xticks([14, 28 * (steps - 1) + 14], ["test image", "test image"], fontsize=8)
    ax.set_title("Interpolation in latent space (decoded posterior means)")
    _save(fig, path)


def save_traversals(path: str | Path, images: np.ndarray, values: np.ndarray, dims: Sequence[int],
                    kl: Sequence[float]) -> None:
    """One row per latent dimension: decoded images as that dimension sweeps `values`, others fixed.

    images: (len(dims), len(values), 784).
    """
    rows, cols = images.shape[:2]
    fig, ax = plt.subplots(figsize=(0.7 * cols + 2.5, 0.7 * rows + 1.0))
    ax.imshow(_mosaic(images), cmap="gray", vmin=0, vmax=1)
    ax.set_yticks([28 * i + 14 for i in range(rows)], [f"z{d} (KL {k:.2f})" for d, k in zip(dims, kl)], fontsize=8)
    ax.set_xticks([28 * j + 14 for j in range(cols)], [f"{v:+.1f}" for v in values], fontsize=7)
    ax.set_title("Latent traversals (dimensions by KL, others at a test image's mean)")
    _save(fig, path)


def save_manifold(path: str | Path, images: np.ndarray, quantiles: np.ndarray) -> None:
    """Decoded 2-D latent grid at Gaussian quantiles: images (n, n, 784) over z1 (columns), z2 (rows)."""
    n = images.shape[0]
    fig, ax = plt.subplots(figsize=(9, 9))
    ax.imshow(_mosaic(images), cmap="gray", vmin=0, vmax=1)
    ticks = [28 * i + 14 for i in range(n)]
    ax.set_xticks(ticks, [f"{q:.1f}" for q in quantiles], fontsize=7)
    ax.set_yticks(ticks, [f"{q:.1f}" for q in quantiles[::-1]], fontsize=7)
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_title("Decoded 2-D latent manifold (Gaussian quantiles)")
    _save(fig, path)


def save_latent_scatter(path: str | Path, points: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                        title: str) -> None:
    """2-D points coloured by class, with a legend of class names."""
    fig, ax = plt.subplots(figsize=(8, 7))
    cmap = plt.get_cmap("tab10")
    for c, name in enumerate(class_names):
        chosen = labels == c
        ax.scatter(points[chosen, 0], points[chosen, 1], s=3, color=cmap(c), label=name, alpha=0.6)
    ax.legend(markerscale=4, fontsize=8, loc="best")
    ax.set_title(title)
    _save(fig, path)


def save_training_curves(path: str | Path, history: Sequence[dict], best_epoch: int | None = None) -> None:
    """Train/val loss, reconstruction and KL per epoch, with the best epoch marked."""
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, part, title in zip(axes, ("loss", "reconstruction", "kl"), ("negative ELBO", "reconstruction", "KL")):
        for split in ("train", "val"):
            key = f"{split}_{part}"
            if key in history[0]:
                ax.plot(epochs, [r[key] for r in history], label=split)
        if best_epoch:
            ax.axvline(best_epoch, color="gray", linestyle="--", label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per image")
        ax.set_title(title)
        ax.legend(fontsize=8)
    _save(fig, path)


def overlay_curves(histories: dict[str, Sequence[dict]], metric: str = "val_loss", ax=None,
                   path: str | Path | None = None):
    """One curve of `metric` per run (name -> per-epoch records) on one axes; saved if path is given."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, history in histories.items():
        ax.plot([r["epoch"] for r in history], [r[metric] for r in history], label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per epoch")
    ax.legend(fontsize=8)
    if path is not None:
        _save(ax.figure, path)
    return ax
