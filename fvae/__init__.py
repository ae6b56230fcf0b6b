"""fvae: variational autoencoders on Fashion-MNIST in JAX/Flax.

The pure, jitted pieces, for your own research code:

    from fvae import create_train_state, train_step, evaluate_bound
    from fvae.models import Encoder, Decoder, VAE
    model, params = fvae.load_model("results/models/gated_vae")  # a stored, trained model

Wings: fvae.data (the data), fvae.models (the probabilistic model), fvae.compute (the jitted
functions), fvae.analysis (classifier, scores, probes, plots), fvae.run (configs, run
directories, the trainer and the report). See docs/architecture.md.
"""

from fvae.compute import (
    Batch,
    TrainState,
    create_train_state,
    eval_step,
    evaluate_bound,
    generate,
    iwae_log_likelihoods,
    iwae_nll,
    latent_statistics,
    reconstruct,
    train_epoch,
    train_step,
)
from fvae.data import Dataset
from fvae.models.gaussians import kl_standard_normal
from fvae.models.losses import Objective, iwae_bound

__version__ = "0.1.0"

__all__ = ["Batch", "Dataset", "Objective", "TrainState", "create_train_state", "eval_step", "evaluate_bound",
           "generate", "iwae_bound", "iwae_log_likelihoods", "iwae_nll", "kl_standard_normal", "latent_statistics",
           "load_model", "reconstruct", "train_epoch", "train_step"]


def __getattr__(name: str):
    """`fvae.load_model` on first use: importing fvae loads neither fvae.run nor Orbax."""
    if name == "load_model":
        from fvae.run.stored import load_model

        return load_model
    raise AttributeError(f"module 'fvae' has no attribute {name!r}")
