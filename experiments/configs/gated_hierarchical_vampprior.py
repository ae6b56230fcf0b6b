"""The two-layer hierarchical VAE with the VampPrior on the top layer and gated dense layers
of 300 units (Tomczak and Welling, 2018): p(z2) p(z1 | z2) p(x | z1, z2), q(z1 | x)
q(z2 | z1, x), 40 latents per layer, 500 pseudo-inputs, trained as gated_vampprior.
Published figure on Fashion-MNIST: 226.75 nats (the Exemplar VAE's, arXiv 2004.04795).

Run:  python -m experiments.train --config experiments/configs/gated_hierarchical_vampprior.py \
        --workdir runs/gated_hierarchical_vampprior
Then: python -m experiments.evaluate --workdir runs/gated_hierarchical_vampprior --iwae_samples=5000
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
    config.model.architecture = "hierarchical"
    config.model.top_latents = 40
    config.prior.name = "vamp"
    config.prior.components = 500
    config.train.batch_size = 256
    return config
