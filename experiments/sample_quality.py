"""Calibrates the sample-quality scores: Frechet distance, precision and recall (k=3), in the
features of the classifier fvae ships, of reference image sets against the test images, next
to the prior and the latent samplers of trained models.

    python -m experiments.sample_quality [--runs runs/gated_vae,results/models/gated_vae] \
        [--samplers gmm,realnvp] [--sampler_config.realnvp.epochs=200] [--out results/sample_quality.json]

Every row compares 10,000 images with the 10,000 grey test images. Reference rows: training
images (the same distribution: Frechet distance near 0, precision and recall about 0.83, as
k=3 balls do not cover a fresh sample of the same distribution), training images of only
5 classes (mode dropping: recall falls, precision stays), the test images binarized once,
training images blurred, and uniform noise (far). Each model's rows are computed as
experiments.evaluate computes them. Prints a markdown table and writes the rows as JSON to --out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402
from scipy.ndimage import uniform_filter  # noqa: E402

from experiments import cli  # First: sets the TensorFlow log level.
from fvae import data, files  # noqa: E402
from fvae.analysis.sample_scores import SCORE_IMAGES, class_accuracy, score_images  # noqa: E402
from fvae.analysis.samplers import describe_samplers  # noqa: E402
from fvae.run.assemble import sample_quality_classifier, stored_data  # noqa: E402
from fvae.run.config import defaults  # noqa: E402
from fvae.run.generation import check_generators, chosen_samplers, fitted_samplers, sample_quality  # noqa: E402
from fvae.run.stored import load_trained  # noqa: E402

flags.DEFINE_list("runs", [], "Run directories or stored models to list beside the references.")
flags.DEFINE_list("samplers", [], f"Latent samplers to score beside each model's prior ({describe_samplers()}).")
flags.DEFINE_string("data_dir", "", "tfds data dir (default: $FVAE_DATA_DIR or ~/tensorflow_datasets).")
flags.DEFINE_bool("retrain_classifier", False, "Use a classifier trained on this machine's data, not the shipped one.")
flags.DEFINE_string("out", "", "JSON file for the rows (none if empty).")
cli.define_sampler_config()
FLAGS = flags.FLAGS


def reference_rows(stored: data.StoredSplits, classifier: tuple[dict, str]) -> list[dict]:
    """One row per reference image set, and the classifier's test accuracy."""
    (train, test), (params, which) = stored, classifier
    num = min(SCORE_IMAGES, test.num_examples)
    rng = np.random.default_rng(0)
    chosen = train.images[rng.permutation(train.num_examples)[:num]]
    five_classes = train.images[rng.permutation(np.flatnonzero(train.labels < 5))[:num]]
    blurred = uniform_filter(chosen.reshape(-1, 28, 28).astype(np.float32) / 255, size=(1, 3, 3)).reshape(num, -1)
    references = {
        "training images": chosen,
        "training images of classes 0-4 only": five_classes,
        "test images binarized once": data.binarize_fixed(test.images, 0),
        "training images, 3x3 box blur": blurred,
        "uniform noise": rng.uniform(0, 1, (num, 784)).astype(np.float32),
    }
    rows = [{"images": name, **score_images(params, images, test.images, num)}
            for name, images in references.items()]
    rows.append({"images": "(classifier's test accuracy)", "classifier": which,
                 "accuracy": class_accuracy(params, test.images, test.labels)})
    return rows


def main(argv):
    del argv
    cli.check_output_file(FLAGS.out, "--out")
    samplers = chosen_samplers(FLAGS.samplers, FLAGS.sampler_config.to_dict())
    loaded = {run: load_trained(run) for run in FLAGS.runs}  # A wrong run fails before the long work.
    for config, _ in loaded.values():
        check_generators(FLAGS.samplers, config)
    config = defaults()
    config.data.data_dir = FLAGS.data_dir
    stored = stored_data(config)  # The data and the classifier, loaded once for every row.
    classifier = sample_quality_classifier(config, FLAGS.retrain_classifier)
    rows = reference_rows(stored, classifier)
    for run, (run_config, state) in loaded.items():
        fitted = fitted_samplers(run, run_config, state, samplers)
        metrics = sample_quality(state, run_config, stored.test, classifier, fitted)
        keep = ("frechet_distance", "precision", "recall", "sample_images")
        model = Path(run).name
        rows.append({"images": f"prior samples of {model}", "model": model, "sampler": "prior",
                     **{k: metrics[k] for k in keep}})
        for name, scores in metrics.get("samplers", {}).items():
            rows.append({"images": f"{name} samples of {model}", "model": model, "sampler": name, **scores})
    print("| images (against the grey test images) | Frechet distance | precision | recall |\n"
          "| --- | --- | --- | --- |")
    for row in rows:
        if "frechet_distance" in row:
            print(f"| {row['images']} | {row['frechet_distance']:.2f} | {row['precision']:.3f} | {row['recall']:.3f} |")
        else:
            print(f"| {row['images']} | accuracy {row['accuracy']:.4f} | | |")
    if FLAGS.out:
        files.write_json(FLAGS.out, rows)


if __name__ == "__main__":
    cli.run(main)
