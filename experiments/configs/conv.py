"""A conv VAE with 32 latents: conv_2d (stride-2 convs 32 -> 64, pixel-shuffle upsampling) with
a 256-unit dense layer each way; Bernoulli likelihood on grey pixels.

Run:  python -m experiments.train --config experiments/configs/conv.py --workdir runs/conv
"""

from experiments.configs import conv_2d


def get_config():
    config = conv_2d.get_config()
    config.model.encoder_hidden = (256,)
    config.model.decoder_hidden = (256,)
    config.model.latents = 32
    return config
