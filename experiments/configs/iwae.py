"""The IWAE (Burda et al., 2016): the default MLP VAE trained on the importance-weighted bound
with K = 5 samples; validation (early stopping) follows the same bound, unweighted.

Run:  python -m experiments.train --config experiments/configs/iwae.py --workdir runs/iwae
"""

from experiments.configs import default


def get_config():
    config = default.get_config()
    config.objective.iwae_samples = 5
    return config
