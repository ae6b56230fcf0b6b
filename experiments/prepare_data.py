"""Prepare Fashion-MNIST once with tensorflow-datasets (later runs reuse it).

    python -m experiments.prepare_data [--data_dir DIR] [--manual_dir DIR]
"""

from experiments import cli  # First: sets the TensorFlow log level.
from absl import flags  # noqa: E402

from fvae import data_files  # noqa: E402

flags.DEFINE_string("data_dir", "", f"tfds data dir ('' -> ${data_files.DATA_DIR_ENV} or ~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", "", f"Folder with the four original .gz files ('' -> ${data_files.MANUAL_DIR_ENV}, "
                    "the Debian package, or download).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    data_dir = data_files.prepare(FLAGS.data_dir or None, FLAGS.manual_dir or None)
    print(f"Fashion-MNIST is prepared in {data_dir}")


if __name__ == "__main__":
    cli.run(main)
