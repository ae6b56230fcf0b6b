"""The jitted computations: the train state (`state`), train steps and epochs (`steps`), the
bounds and other evaluation functions (`bounds`), and how arrays are placed on devices
(`placement`). Pure functions of their arguments: no files, no printing, no config."""

from fvae.compute.bounds import (
    active_units,
    dataset_codes,
    decode_pixel_means,
    eval_step,
    evaluate_bound,
    iwae_log_likelihoods,
    iwae_nll,
    latent_statistics,
    reconstruct,
)
from fvae.compute.decoding import decode_top_samples, generate, generate_many, posterior_top_samples
from fvae.compute.state import Batch, Metrics, TrainState, create_train_state
from fvae.compute.steps import (
    EpochOptions,
    epoch_batches,
    first_nonfinite_step,
    train_block,
    train_epoch,
    train_epoch_stepwise,
    train_step,
)

__all__ = ["Batch", "EpochOptions", "Metrics", "TrainState", "active_units", "create_train_state", "dataset_codes",
           "decode_pixel_means", "decode_top_samples", "epoch_batches", "eval_step", "evaluate_bound",
           "first_nonfinite_step", "generate", "generate_many", "iwae_log_likelihoods", "iwae_nll",
           "latent_statistics", "posterior_top_samples", "reconstruct", "train_block", "train_epoch",
           "train_epoch_stepwise", "train_step"]
