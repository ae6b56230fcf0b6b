"""The standard published setting: dynamically binarized training batches, a Bernoulli
decoder, an MLP VAE with 40 latents, N(0, I) prior, KL warm-up over the first 50 epochs.
Validation and test images are binarized once by a fixed seed.

Run:  python -m experiments.train --config experiments/configs/binarized_mlp.py --workdir runs/binarized_mlp
Then: python -m experiments.evaluate --workdir runs/binarized_mlp --iwae_samples=1000,5000
"""

import ml_collections

from fvae.run.config import defaults


def get_config() -> ml_collections.ConfigDict:
    config = defaults()
    config.likelihood.name = "binarized_bernoulli"  # Dynamic binarization; evaluation binarized once.
    config.model.encoder_hidden = (512, 512)
    config.model.decoder_hidden = (512, 512)
    config.model.latents = 40
    config.objective.warmup_epochs = 50
    config.train.max_epochs = 1000
    config.train.patience = 30
    config.train.max_train_minutes = 50.0  # A time budget: reproduce a run with its epochs instead.
    return config
