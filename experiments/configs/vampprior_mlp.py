"""binarized_mlp with the VampPrior (Tomczak and Welling, 2018): p(z) is the mixture of the
encoder's posteriors at 500 learned pseudo-inputs instead of N(0, I). Batches of 256: the
pseudo-inputs pass through the encoder every step, so larger batches halve their share of
the cost on CPU.

Run:  python -m experiments.train --config experiments/configs/vampprior_mlp.py --workdir runs/vampprior_mlp
Then: python -m experiments.evaluate --workdir runs/vampprior_mlp --iwae_samples=1000,5000
"""

from experiments.configs import binarized_mlp


def get_config():
    config = binarized_mlp.get_config()
    config.prior.name = "vamp"
    config.prior.components = 500
    config.train.batch_size = 256
    config.train.max_train_minutes = 55.0
    return config
