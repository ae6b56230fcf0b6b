"""Default fvae config: a two-hidden-layer MLP VAE (see the README for why these values).

Run:  python -m experiments.train --config experiments/configs/default.py --workdir runs/default
Override any value:  --config.train.batch_size=256 --config.model.latents=16
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.data_dir = ""      # tfds data dir; "" -> $FVAE_DATA_DIR or ~/tensorflow_datasets
    config.data.manual_dir = ""    # folder with the 4 .gz files; "" -> $FVAE_MANUAL_DIR, Debian package, download
    config.data.val_size = 5000    # held out from the 60,000 training images, by seed
    config.data.train_subset = 0   # > 0: train on only that many images (quick runs)

    config.model = ml_collections.ConfigDict()
    config.model.encoder_hidden = (512, 256)
    config.model.decoder_hidden = (256, 512)
    config.model.latents = 32
    config.model.compute_dtype = "float32"  # or "bfloat16" (parameters and Adam state stay float32)

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 128
    config.train.learning_rate = 1e-3
    config.train.max_epochs = 200
    config.train.patience = 10       # epochs without validation improvement before stopping
    config.train.min_delta = 0.0     # nats an epoch must improve by to count
    config.train.on_device = True    # dataset on device, epochs as compiled scans; False: per-step host loop
    config.train.steps_per_call = 0  # steps per compiled call; 0 = the whole epoch
    config.train.eval_batch_size = 1000

    config.parallel = ml_collections.ConfigDict()
    config.parallel.distributed = False       # True: call jax.distributed.initialize (multi-host)
    config.parallel.coordinator_address = ""  # "" -> environment / cluster auto-detection
    config.parallel.num_processes = 0
    config.parallel.process_id = -1

    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.keep = 2       # latest checkpoints kept (the best one is always kept)

    config.output = ml_collections.ConfigDict()
    config.output.num_samples = 64
    config.output.num_reconstructions = 32
    return config
