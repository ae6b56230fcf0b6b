"""A conv VAE with 32 latents: stride-2 convs 32 -> 64 and a 256-unit dense layer each way,
pixel-shuffle upsampling, Bernoulli likelihood on grey pixels.

Run:  python -m experiments.train --config experiments/configs/conv.py --workdir runs/conv
"""

from experiments.configs import default


def get_config():
    config = default.get_config()
    config.model.architecture = "conv"
    config.model.conv_channels = (32, 64)
    config.model.encoder_hidden = (256,)
    config.model.decoder_hidden = (256,)
    config.model.latents = 32
    config.train.steps_per_call = 8  # XLA:CPU runs convs inside loops ~20x slower: 8 unrolled steps per call
    config.train.unroll = True
    config.model.upsample = "pixel_shuffle"
    return config
