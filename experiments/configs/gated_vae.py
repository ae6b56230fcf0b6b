"""The standard setting's vanilla VAE with the VampPrior paper's layers (Tomczak and Welling,
2018): dynamically binarized training, N(0, I) prior, 40 latents, two gated dense layers of
300 units in encoder and decoder, KL warm-up, and a cosine learning-rate decay that ends at
train.max_epochs (early stopping still keeps the best validation epoch). The published
figure for this model on Fashion-MNIST is 228.70 nats (IWAE, K=5000; arXiv 2004.04795).

Run:  python -m experiments.train --config experiments/configs/gated_vae.py --workdir runs/gated_vae
Then: python -m experiments.evaluate --workdir runs/gated_vae --iwae_samples=5000
"""

from experiments.configs import binarized_mlp


def get_config():
    config = binarized_mlp.get_config()
    config.model.gated = True
    config.model.encoder_hidden = (300, 300)
    config.model.decoder_hidden = (300, 300)
    config.train.batch_size = 100
    config.train.learning_rate = 1e-3
    config.train.lr_schedule = "cosine"
    config.train.max_epochs = 1000
    config.objective.warmup_epochs = 100
    config.train.patience = 100
    config.train.max_train_minutes = 0.0
    return config
