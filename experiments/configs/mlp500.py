"""The Flax/PyTorch example VAE: 784-500-ReLU -> 20 latents; 20-500-ReLU -> 784; batch 128; Adam 1e-3.

Run:  python -m experiments.train --config experiments/configs/mlp500.py --workdir runs/mlp500
"""

from experiments.configs import default


def get_config():
    config = default.get_config()
    config.model.encoder_hidden = (500,)
    config.model.decoder_hidden = (500,)
    config.model.latents = 20
    config.train.batch_size = 128
    config.train.learning_rate = 1e-3
    return config
