"""The default MLP VAE with a mixture of 3 discretized logistics over the 256 pixel levels:
-log p(x) is a true discrete likelihood, reported in bits per dimension.

Run:  python -m experiments.train --config experiments/configs/discretized_logistic.py \
        --workdir runs/discretized_logistic
"""

from experiments.configs import default


def get_config():
    config = default.get_config()
    config.likelihood.name = "discretized_logistic"
    config.likelihood.mixtures = 3
    return config
