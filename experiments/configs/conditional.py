"""A conditional VAE: the default MLP VAE with the class label (one-hot) fed to the encoder
next to the image and to the decoder next to z.

Run:    python -m experiments.train --config experiments/configs/conditional.py --workdir runs/conditional
Sample: python -m experiments.sample --workdir runs/conditional --label Dress -n 64
"""

from experiments.configs import default


def get_config():
    config = default.get_config()
    config.model.conditional = True
    return config
