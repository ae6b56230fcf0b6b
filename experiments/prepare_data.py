"""Prepare Fashion-MNIST once with tensorflow-datasets (later runs reuse it).

    python -m experiments.prepare_data [--data_dir DIR] [--manual_dir DIR]
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from fvae import data  # noqa: E402

flags.DEFINE_string("data_dir", "", f"tfds data dir ('' -> ${data.DATA_DIR_ENV} or ~/tensorflow_datasets).")
flags.DEFINE_string("manual_dir", "", f"Folder with the four original .gz files ('' -> ${data.MANUAL_DIR_ENV}, "
                    "the Debian package, or download).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        data_dir = data.prepare(FLAGS.data_dir or None, FLAGS.manual_dir or None)
    except data.DataError as err:
        sys.exit(f"error: {err}")
    print(f"Fashion-MNIST is prepared in {data_dir}")


if __name__ == "__main__":
    app.run(main)
