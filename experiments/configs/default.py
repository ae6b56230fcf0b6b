"""Default fvae config: a two-hidden-layer MLP VAE (see the README for why these values).

Run:  python -m experiments.train --config experiments/configs/default.py --workdir runs/default
Override any value:  --config.train.batch_size=256 --config.model.latents=16
Every key, its default and its meaning: fvae/run/config.py.
"""

import ml_collections

from fvae.run.config import defaults


def get_config() -> ml_collections.ConfigDict:
    return defaults()
