"""top_down.py on a one-hour budget: the same model and stabilizers, 400 epochs (the learning
rate's cosine and the KL warm-up laid out over them).

Run:  python -m experiments.train --config experiments/configs/top_down_quick.py --workdir runs/top_down_quick
Then: python -m experiments.evaluate --workdir runs/top_down_quick --iwae_samples=5000 --temperatures=0.7
"""

import ml_collections

from experiments.configs import top_down


def get_config() -> ml_collections.ConfigDict:
    config = top_down.get_config()
    config.train.max_epochs = 400
    config.objective.warmup_epochs = 40
    return config
