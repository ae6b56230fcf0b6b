"""The default MLP VAE with a Gaussian likelihood whose variance the decoder predicts per
pixel (`--config.likelihood.variance=global` learns one variance for all pixels).

Run:  python -m experiments.train --config experiments/configs/gaussian.py --workdir runs/gaussian
"""

from experiments.configs import default


def get_config():
    config = default.get_config()
    config.likelihood.name = "gaussian"
    config.likelihood.variance = "per_pixel"
    return config
