"""The default MLP VAE with the continuous Bernoulli likelihood (Loaiza-Ganem and Cunningham,
2019): a normalized density for grey pixels in [0, 1], unlike the plain Bernoulli.

Run:  python -m experiments.train --config experiments/configs/continuous_bernoulli.py \
        --workdir runs/continuous_bernoulli
"""

from experiments.configs import default


def get_config():
    config = default.get_config()
    config.likelihood.name = "continuous_bernoulli"
    return config
