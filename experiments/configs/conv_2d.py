"""Chollet's conv VAE (conv_chollet.py: 2 latents) with sub-pixel (pixel-shuffle) upsampling
in place of the transposed convs: same shapes, 2.1x the FLOPs of the transposed convs'
phase-split matmuls, and on the CPU about half their speed (README, Performance).

Run:  python -m experiments.train --config experiments/configs/conv_2d.py --workdir runs/conv_2d
"""

from experiments.configs import conv_chollet


def get_config():
    config = conv_chollet.get_config()
    config.model.upsample = "pixel_shuffle"
    return config
