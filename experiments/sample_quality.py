"""Calibrates the sample-quality score: the Frechet distance, in the features of fvae's own
Fashion-MNIST classifier, of reference image sets to the test images, next to the evaluated runs.

    python -m experiments.sample_quality [--runs runs/gated_vae,runs/conv_chollet] [--out results/sample_quality.json]

Reference rows (10,000 images each, against the 10,000 grey test images): training images
(the same distribution: near 0), the test images binarized once, training images blurred,
and uniform noise (far). Each run's row is computed as experiments.evaluate computes it
(the same prior samples). Prints a markdown table and writes the rows as JSON to --out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402
from scipy.ndimage import uniform_filter  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from fvae import data  # noqa: E402
from fvae.analysis.sample_scores import class_accuracy, frechet_distance_of_images  # noqa: E402
from fvae.run.assemble import load_run_state, run_keys, sample_quality_classifier, stored_split  # noqa: E402
from fvae.run.config import defaults  # noqa: E402
from fvae.run.report import sample_quality_metrics  # noqa: E402

flags.DEFINE_list("runs", [], "Evaluated run directories to list beside the references.")
flags.DEFINE_string("data_dir", "", "tfds data dir (default: $FVAE_DATA_DIR or ~/tensorflow_datasets).")
flags.DEFINE_integer("images", 10_000, "Images per reference set.", lower_bound=2)
flags.DEFINE_string("out", "", "JSON file for the rows (none if empty).")
FLAGS = flags.FLAGS


def reference_rows(data_dir: str, num: int) -> list[dict]:
    config = defaults()
    config.data.data_dir = data_dir
    classifier = sample_quality_classifier(config)
    test, train = stored_split(config, "test").take(num), stored_split(config, "train")
    rng = np.random.default_rng(0)
    chosen = train.images[rng.permutation(train.num_examples)[:num]]
    blurred = uniform_filter(chosen.reshape(-1, 28, 28).astype(np.float32) / 255, size=(1, 3, 3)).reshape(num, -1)
    references = {
        "training images": chosen,
        "test images binarized once": data.binarize_fixed(test.images, 0),
        "training images, 3x3 box blur": blurred,
        "uniform noise": rng.uniform(0, 1, (num, 784)).astype(np.float32),
    }
    rows = [{"images": name, "frechet_distance": frechet_distance_of_images(classifier, images, test.images)}
            for name, images in references.items()]
    rows.append({"images": "(classifier's test accuracy)", "accuracy": class_accuracy(classifier, test.images,
                                                                                        test.labels)})
    return rows


def main(argv):
    del argv
    cli.check_output_file(FLAGS.out, "--out")
    loaded = {run: load_run_state(run) for run in FLAGS.runs}  # A wrong run fails before the long work.
    rows = reference_rows(FLAGS.data_dir, FLAGS.images)
    for run, (config, state) in loaded.items():
        rows.append({"images": f"samples of {Path(run).name}",
                     **sample_quality_metrics(state, config, run_keys(config.seed)["sample"], FLAGS.images)})
    print("| images (against the grey test images) | Frechet distance |\n| --- | --- |")
    for row in rows:
        value = f"{row['frechet_distance']:.2f}" if "frechet_distance" in row else f"accuracy {row['accuracy']:.4f}"
        print(f"| {row['images']} | {value} |")
    if FLAGS.out:
        Path(FLAGS.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    cli.run(main)
