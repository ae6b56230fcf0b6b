"""What both peer scripts share: their command line and their synthetic images."""

from __future__ import annotations

import argparse
import json

import numpy as np


def arguments(description: str, models, default: str) -> argparse.Namespace:
    """--model, --epochs, --train_images, --batch_size, --json; a bad value exits with one error line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", choices=sorted(models), default=default)
    parser.add_argument("--epochs", type=int, default=3, help="Timed epochs (after one warm-up epoch).")
    parser.add_argument("--train_images", type=int, default=55_000)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--json", action="store_true", help="Print one JSON line.")
    args = parser.parse_args()
    if args.epochs < 1 or args.train_images < args.batch_size or args.batch_size < 1:
        parser.exit(2, "error: need --epochs >= 1 and --train_images >= --batch_size >= 1\n")
    return args


def synthetic_images(num: int) -> np.ndarray:
    """Uniform random uint8 images (num, 784), seed 0: what experiments.benchmark trains on."""
    return np.random.default_rng(0).integers(0, 256, (num, 784), dtype=np.uint8)


def report(result: dict, as_json: bool, line: str) -> None:
    print(json.dumps(result) if as_json else line)
