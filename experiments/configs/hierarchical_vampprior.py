"""hierarchical_mlp with the VampPrior on the top layer: p(z2) is the mixture of
q(z2 | E[z1 | u_k], u_k) at 500 learned pseudo-inputs u_k (Tomczak and Welling, 2018).

Run:  python -m experiments.train --config experiments/configs/hierarchical_vampprior.py \
        --workdir runs/hierarchical_vampprior
Then: python -m experiments.evaluate --workdir runs/hierarchical_vampprior --iwae_samples=1000,5000
"""

from experiments.configs import hierarchical_mlp


def get_config():
    config = hierarchical_mlp.get_config()
    config.prior.name = "vamp"
    config.prior.components = 500
    config.train.batch_size = 256
    return config
