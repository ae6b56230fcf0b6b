"""The standard setting's vanilla VAE with the VampPrior paper's layers (Tomczak and Welling,
2018): dynamically binarized training, N(0, I) prior, 40 latents, two gated dense layers of
300 units in encoder and decoder, KL warm-up, and a cosine learning-rate decay that ends at
train.max_epochs (early stopping still keeps the best validation epoch). The published
figure for this model on Fashion-MNIST is 228.70 nats (IWAE, K=5000; arXiv 2004.04795).

Run:  python -m experiments.train --config experiments/configs/gated_vae.py --workdir runs/gated_vae
Then: python -m experiments.evaluate --workdir runs/gated_vae --iwae_samples=5000
"""

import ml_collections

from fvae.run.config import defaults


def get_config() -> ml_collections.ConfigDict:
    config = defaults()
    config.likelihood.name = "binarized_bernoulli"  # Dynamic binarization; evaluation binarized once.
    config.model.gated = True
    config.model.encoder_hidden = (300, 300)
    config.model.decoder_hidden = (300, 300)
    config.model.latents = 40
    config.objective.warmup_epochs = 100
    config.train.learning_rate = 1e-3
    config.train.lr_schedule = "cosine"  # From learning_rate down to 0 at max_epochs.
    config.train.max_epochs = 1000
    config.train.patience = 100
    config.train.batch_size = 100
    return config
