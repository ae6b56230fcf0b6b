"""The two-layer hierarchical VAE with the VampPrior on the top layer and gated dense layers
of 300 units (Tomczak and Welling, 2018): p(z2) p(z1 | z2) p(x | z1, z2), q(z1 | x)
q(z2 | z1, x), 40 latents per layer, 500 pseudo-inputs, trained as gated_vampprior.
Published figure on Fashion-MNIST: 226.75 nats (the Exemplar VAE's, arXiv 2004.04795).

Run:  python -m experiments.train --config experiments/configs/gated_hierarchical_vampprior.py --workdir runs/gated_hierarchical_vampprior
Then: python -m experiments.evaluate --workdir runs/gated_hierarchical_vampprior --iwae_samples=5000
"""

from experiments.configs import gated_vampprior


def get_config():
    config = gated_vampprior.get_config()
    config.model.architecture = "hierarchical"
    config.model.top_latents = 40
    return config
