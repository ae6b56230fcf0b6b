"""The convolutional VAE of Chollet's "Deep Learning with Python" (2nd ed., ch. 12), 2 latents.

Encoder: 3x3 conv 32 stride 2 -> 3x3 conv 64 stride 2 -> dense 16 -> (mean, log-variance)
of 2 latents. Decoder: dense 7*7*64 -> 3x3 transposed conv 64 stride 2 -> 3x3 transposed
conv 32 stride 2 -> 3x3 conv to 1 channel of Bernoulli logits. Adam 1e-3, batch 128.

The transposed convolutions are Chollet's, with his parameter shapes. On the CPU they run
as matmuls (fvae.models.conv_layers; `model.conv_impl`), each split into its output phases
so that no multiply touches an inserted zero: about 2,000 images/s on 2 cores (README,
Performance). `--config.model.upsample=pixel_shuffle` gives the same shapes with sub-pixel
upsampling instead (conv_2d.py).

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
    config.model.upsample = "transpose"
    return config
