"""Prepare Fashion-MNIST once with tensorflow-datasets (later runs reuse it).

    python -m experiments.prepare_data [--data_dir DIR] [--manual_dir DIR]
"""

from absl import flags  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from fvae.data import sources  # noqa: E402

flags.DEFINE_string("data_dir", "", f"tfds data dir ('' -> ${sources.DATA_DIR_ENV} or ~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", "", f"Folder with the four original .gz files ('' -> ${sources.MANUAL_DIR_ENV}, "
                    "the Debian package, or download).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    data_dir = sources.prepare(FLAGS.data_dir or None, FLAGS.manual_dir or None)
    print(f"Fashion-MNIST is prepared in {data_dir}")


if __name__ == "__main__":
    cli.run(main)
