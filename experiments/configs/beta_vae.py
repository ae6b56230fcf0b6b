"""A beta-VAE (Higgins et al., 2017): the default MLP VAE with the KL term weighted by beta = 4.
Early stopping and the reported numbers still use the true (beta = 1) negative ELBO.

Run:  python -m experiments.train --config experiments/configs/beta_vae.py --workdir runs/beta_vae
"""

from experiments.configs import default


def get_config():
    config = default.get_config()
    config.objective.beta = 4.0
    return config
