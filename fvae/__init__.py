"""fvae: variational autoencoders on Fashion-MNIST in JAX/Flax.

The pure, jitted pieces are importable without the CLI or any global config:

    from fvae import train_step, eval_step, create_train_state
    from fvae.models import Encoder, Decoder, VAE
"""

from fvae.evaluate import (eval_step, evaluate_elbo, generate, iwae_log_likelihoods, iwae_nll, latent_statistics,
                           reconstruct)
from fvae.losses import Objective, iwae_bound, kl_standard_normal
from fvae.train import EarlyStopping, TrainState, create_train_state, train_epoch, train_step

__version__ = "0.1.0"

__all__ = [
    "EarlyStopping", "Objective", "TrainState", "create_train_state", "eval_step", "evaluate_elbo", "generate",
    "iwae_bound", "iwae_log_likelihoods", "iwae_nll", "kl_standard_normal", "latent_statistics", "reconstruct", "train_epoch", "train_step",
]
