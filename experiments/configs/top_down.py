"""The top-down hierarchical VAE with MLP cells (Ladder VAE / NVAE / VDVAE; fvae.models.top_down):
4 groups of 16 latents, one bottom-up pass and one top-down path of residual cells of 256
units shared by p and q, q as NVAE's residual Normal (better than the Ladder VAE's merge in
the ablation), N(0, I) on the top group. Trained like the headline models (dynamic
binarization, batches of 256, 1000 epochs) with what deep hierarchies need: a learning-rate
warm-up before the cosine decay, KL warm-up, free bits, skipped extreme gradients, bounded
log-variances and LayerNorms in the residual streams. The size is the size study's fastest
(docs/models.md): 1.9 hours of training on 2 cores.

Run:  python -m experiments.train --config experiments/configs/top_down.py --workdir runs/top_down
Then: python -m experiments.evaluate --workdir runs/top_down --iwae_samples=5000
"""

import ml_collections

from fvae.run.config import defaults


def get_config() -> ml_collections.ConfigDict:
    config = defaults()
    config.likelihood.name = "binarized_bernoulli"  # Dynamic binarization; evaluation binarized once.
    config.model.architecture = "top_down"
    config.model.cell = "mlp"
    config.model.groups = 4
    config.model.latents = 16  # per group
    config.model.width = 256
    config.model.cell_hidden = 256
    config.model.posterior = "residual"
    config.model.logvar_range = (-8.0, 2.0)
    # Without LayerNorms, rare images' bottom-up features blew up and both 400-epoch trials
    # diverged near epoch 100, whatever the log-variance bounds (docs/models.md).
    config.model.layer_norm = True
    config.objective.warmup_epochs = 100
    config.objective.free_bits = 0.02  # nats per latent
    config.train.skip_grad_norm = 1000.0  # VDVAE's guard; typical norms are 30-300 (docs/models.md)
    config.train.batch_size = 256
    config.train.learning_rate = 1e-3
    config.train.lr_schedule = "warmup_cosine"  # Without the rise, Adam's first steps wreck a deep stack
    config.train.lr_warmup_epochs = 5.0
    config.train.max_epochs = 1000
    config.train.patience = 100
    return config
