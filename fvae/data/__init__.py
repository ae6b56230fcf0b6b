"""Data: Fashion-MNIST's original files found, verified and prepared once through tfds
(`sources`), then read into memory as uint8 arrays with the validation split and small
transforms (`arrays`). No model, training or run code is imported here."""

from fvae.data.arrays import (
    CLASS_NAMES,
    IMAGE_SHAPE,
    NUM_CLASSES,
    Dataset,
    Splits,
    StoredSplits,
    as_dataset,
    binarize_fixed,
    load,
    load_split,
    load_stored,
    parse_label,
    split,
    split_validation,
    to_unit_interval,
)
from fvae.data.sources import NUM_TRAIN

__all__ = ["CLASS_NAMES", "IMAGE_SHAPE", "NUM_CLASSES", "NUM_TRAIN", "Dataset", "Splits", "StoredSplits", "as_dataset",
           "binarize_fixed", "load", "load_split", "load_stored", "parse_label", "split", "split_validation",
           "to_unit_interval"]
