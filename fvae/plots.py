"""PNG pictures of a run: image grids with titles (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _as_images(pixels: np.ndarray) -> np.ndarray:
    """(N, 784) or (N, 28, 28, 1) values in [0, 1] -> (N, 28, 28)."""
    return np.asarray(pixels, dtype=np.float32).reshape(len(pixels), 28, 28)


def save_image_grid(path: str | Path, pixels: np.ndarray, title: str, columns: int = 8,
                    labels: Sequence[str] | None = None) -> None:
    """Saves images (values in [0, 1]) as a grid with a title and optional per-image labels."""
    images = _as_images(pixels)
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.45 * rows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], cmap="gray", vmin=0.0, vmax=1.0)
            if labels is not None:
                ax.set_title(labels[i], fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
