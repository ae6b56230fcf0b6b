"""Smoke test of an installed fvae (CI runs it with the wheel, from outside the repository):
import it, train one epoch of a small model on mock Fashion-MNIST, evaluate the run (with the
sample-quality classifier's weights installed with the package).

    cd "$(mktemp -d)" && /path/to/venv/bin/python /path/to/fvae/scripts/smoke_test.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

import fvae  # noqa: E402
from fvae.data import sources  # noqa: E402
from fvae.run.config import defaults  # noqa: E402
from fvae.run.report import evaluate_run  # noqa: E402
from fvae.run.trainer import train_and_evaluate  # noqa: E402

SIZES = {"train": 600, "test": 200}


def mock_split(self, split, decoders=None, read_config=None, shuffle_files=False):
    """Class prototypes plus noise, as uint8 images with labels."""
    del self, decoders, read_config, shuffle_files
    prototypes = np.random.default_rng(0).integers(0, 256, (10, 28, 28, 1))
    rng = np.random.default_rng(len(str(split)))
    labels = rng.integers(0, 10, SIZES[str(split)])
    images = np.clip(prototypes[labels] + rng.integers(-60, 61, (len(labels), 28, 28, 1)), 0, 255)
    return tf.data.Dataset.from_tensor_slices({"image": images.astype(np.uint8), "label": labels})


def main() -> int:
    if Path(fvae.__file__).resolve().parents[1] == Path(__file__).resolve().parents[1]:
        print("error: fvae was imported from this checkout, not from the installed package", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as root:
        config = defaults()
        config.model.encoder_hidden, config.model.decoder_hidden, config.model.latents = (64,), (64,), 4
        config.data.val_size, config.train.max_epochs, config.train.batch_size = 100, 1, 100
        config.data.data_dir = str(Path(root) / "data")
        with tfds.testing.mock_data(as_dataset_fn=mock_split), \
                mock.patch.object(sources, "prepare", lambda data_dir=None, manual_dir=None: Path(data_dir or root)), \
                mock.patch.object(sources, "resolve_data_dir", lambda data_dir=None: Path(root)):
            summary = train_and_evaluate(config, Path(root) / "run", progress=False)
            metrics = evaluate_run(Path(root) / "run", iwae_samples=(10,), limit=100)
    assert summary["epochs_trained"] == 1 and np.isfinite(summary["test_loss"]), summary
    assert np.isfinite(metrics["iwae_nll_k10"]) and metrics["iwae_nll_k10"] <= metrics["elbo_loss"] + 5, metrics
    assert metrics["classifier"].startswith("shipped") and 0 <= metrics["recall"] <= 1, metrics  # Weights installed.
    print(f"smoke test: fvae {fvae.__version__} from {Path(fvae.__file__).parent}: 1 epoch, test loss "
          f"{summary['test_loss']:.2f}, IWAE K=10 {metrics['iwae_nll_k10']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
