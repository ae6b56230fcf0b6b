"""A three-layer hierarchical VAE with the VampPrior on the top layer: gated_hierarchical_vampprior
with a middle stochastic layer, p(z3) p(z2 | z3) p(z1 | z2) p(x | z1, z2, z3), 40, 30 and 20
latents bottom up. An example of a deeper model as a config file; not yet trained here.

Run:  python -m experiments.train --config experiments/configs/gated_hierarchical3_vampprior.py \
        --workdir runs/gated_hierarchical3_vampprior
Then: python -m experiments.evaluate --workdir runs/gated_hierarchical3_vampprior --iwae_samples=5000
"""

import ml_collections

from fvae.run.config import defaults


def get_config() -> ml_collections.ConfigDict:
    config = defaults()
    config.likelihood.name = "binarized_bernoulli"  # Dynamic binarization; evaluation binarized once.
    config.model.architecture = "hierarchical"
    config.model.gated = True
    config.model.encoder_hidden = (300, 300)
    config.model.decoder_hidden = (300, 300)
    config.model.latents = 40
    config.model.middle_latents = (30,)
    config.model.top_latents = 20
    config.objective.warmup_epochs = 100
    config.train.learning_rate = 1e-3
    config.train.lr_schedule = "cosine"  # From learning_rate down to 0 at max_epochs.
    config.train.max_epochs = 1000
    config.train.patience = 100
    config.prior.name = "vamp"
    config.prior.components = 500
    config.train.batch_size = 256
    return config
