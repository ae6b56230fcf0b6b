"""binarized_mlp with two stochastic layers (Tomczak and Welling, 2018): p(z2) p(z1 | z2)
p(x | z1, z2) and q(z1 | x) q(z2 | z1, x), 40 latents in each layer, MLPs of 300-300.
The codes of probes and pictures are both layers' posterior means, concatenated (80).

Run:  python -m experiments.train --config experiments/configs/hierarchical_mlp.py --workdir runs/hierarchical_mlp
Then: python -m experiments.evaluate --workdir runs/hierarchical_mlp --iwae_samples=1000,5000
"""

from experiments.configs import binarized_mlp


def get_config():
    config = binarized_mlp.get_config()
    config.model.architecture = "hierarchical"
    config.model.encoder_hidden = (300, 300)
    config.model.decoder_hidden = (300, 300)
    config.model.latents = 40
    config.model.top_latents = 40
    config.train.learning_rate = 5e-4
    return config
