"""fvae: variational autoencoders on Fashion-MNIST in JAX/Flax.

The pure, jitted pieces are importable without the CLI or any global config:

    from fvae import train_step, eval_step, create_train_state
    from fvae.models import Encoder, Decoder, VAE

The names below load their modules (and jax) on first use, so `import fvae.config` (what
every experiment config file does) stays free of jax.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Dataset": "data",
    "eval_step": "evaluate", "evaluate_bound": "evaluate", "generate": "evaluate",
    "iwae_log_likelihoods": "evaluate", "iwae_nll": "evaluate", "latent_statistics": "evaluate",
    "reconstruct": "evaluate",
    "Objective": "losses", "iwae_bound": "losses", "kl_standard_normal": "gaussians",
    "EarlyStopping": "train", "TrainState": "train", "create_train_state": "train", "train_epoch": "train",
    "train_step": "train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"fvae.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fvae' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
