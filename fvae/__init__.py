"""fvae: variational autoencoders on Fashion-MNIST in JAX/Flax.

The pure, jitted pieces are importable without the CLI or any global config:

    from fvae import train_step, eval_step, create_train_state
    from fvae.models import Encoder, Decoder, VAE
"""

from fvae.evaluate import eval_step, evaluate_elbo, generate, iwae_nll, latent_statistics, reconstruct
from fvae.losses import bernoulli_reconstruction, kl_standard_normal, negative_elbo
from fvae.train import EarlyStopping, TrainState, create_train_state, train_epoch, train_step

__version__ = "0.1.0"

__all__ = [
    "EarlyStopping", "TrainState", "bernoulli_reconstruction", "create_train_state", "eval_step",
    "evaluate_elbo", "generate", "iwae_nll", "latent_statistics", "kl_standard_normal", "negative_elbo", "reconstruct", "train_epoch",
    "train_step",
]
