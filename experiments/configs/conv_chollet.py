"""The convolutional VAE of Chollet's "Deep Learning with Python" (2nd ed., ch. 12), 2 latents.

Encoder: 3x3 conv 32 stride 2 -> 3x3 conv 64 stride 2 -> dense 16 -> (mean, log-variance)
of 2 latents. Decoder: dense 7*7*64 -> 3x3 transposed conv 64 stride 2 -> 3x3 transposed
conv 32 stride 2 -> 3x3 conv to 1 channel of Bernoulli logits. Adam 1e-3, batch 128.

The transposed convolutions are Chollet's. On CPU their gradient is slow (see the
benchmark table in the README); `--config.model.upsample=pixel_shuffle` gives the same
shapes with sub-pixel upsampling, which trains several times faster (conv_2d.py).

Run:  python -m experiments.train --config experiments/configs/conv_chollet.py --workdir runs/conv_chollet
"""

from experiments.configs import default


def get_config():
    config = default.get_config()
    config.model.architecture = "conv"
    config.model.conv_channels = (32, 64)
    config.model.encoder_hidden = (16,)
    config.model.decoder_hidden = ()
    config.model.latents = 2
    config.train.steps_per_call = 8  # XLA:CPU runs convs inside loops ~20x slower: 8 unrolled steps per call
    config.train.unroll = True
    config.model.upsample = "transpose"
    return config
