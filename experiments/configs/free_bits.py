"""The default MLP VAE with KL warm-up over 10 epochs and free bits: each latent's batch-mean
KL counts as at least 0.5 nats (Kingma et al., 2016), which keeps more latents active.

Run:  python -m experiments.train --config experiments/configs/free_bits.py --workdir runs/free_bits
"""

from experiments.configs import default


def get_config():
    config = default.get_config()
    config.objective.warmup_epochs = 10
    config.objective.free_bits = 0.5
    return config
