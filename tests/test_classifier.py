"""fvae's own Fashion-MNIST classifier: it learns, it is deterministic, it is cached, and its
features rank image sets as a sample-quality score should."""

import numpy as np
import pytest

from fvae.analysis import classifier
from fvae.analysis.classifier import ClassifierSpec, cached_classifier, classify, train_classifier
from fvae.analysis.sample_scores import class_accuracy, frechet_distance_of_images
from fvae.data import Dataset
from tests.helpers import class_images, params_equal

SPEC = ClassifierSpec(epochs=3)


def flat_class_images(n, seed):
    images, labels = class_images(n, seed)
    return images.reshape(n, -1), labels.astype(np.int32)


@pytest.fixture(scope="module")
def trained():
    images, labels = flat_class_images(2000, 0)
    return train_classifier(images, labels, SPEC)


@pytest.mark.slow
def test_classifier_learns_held_out_images_and_is_deterministic_by_seed(trained):
    test_images, test_labels = flat_class_images(1000, 1)
    assert class_accuracy(trained, test_images, test_labels) > 0.9  # 10 balanced classes: chance is 0.1.
    images, labels = flat_class_images(2000, 0)
    assert params_equal(train_classifier(images, labels, SPEC), trained)
    other = train_classifier(images, labels, ClassifierSpec(epochs=3, seed=1))
    assert not params_equal(other, trained)
    # uint8 pixels and the same pixels in [0, 1] are the same images.
    np.testing.assert_allclose(classify(trained, test_images[:50])[1], classify(trained, test_images[:50] / 255.0)[1],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_frechet_distance_puts_the_same_distribution_near_zero_and_others_far(trained):
    test_images, test_labels = flat_class_images(1000, 1)
    others, other_labels = flat_class_images(1000, 2)
    same = frechet_distance_of_images(trained, others, test_images)
    noise = np.random.default_rng(3).uniform(0, 1, (1000, 784))
    noisy = frechet_distance_of_images(trained, noise, test_images)
    one_class = frechet_distance_of_images(trained, others[other_labels == 0], test_images)
    assert 0 <= same < 0.05 * min(one_class, noisy)  # The same distribution is near 0, others far.


@pytest.mark.slow
def test_cached_classifier_is_trained_once_kept_atomically_and_replaced_when_unreadable(tmp_path, trained):
    images, labels = flat_class_images(2000, 0)
    calls, logged = [], []

    def training_data():
        calls.append(1)
        return Dataset(images, labels)

    first = cached_classifier(tmp_path, training_data, SPEC, log=logged.append)
    assert calls == [1] and params_equal(first, trained)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([SPEC.file_name, SPEC.file_name[:-8] + ".json"])
    note = classifier.describe(tmp_path, SPEC)
    assert note["training_images"] == 2000 and note["epochs"] == 3 and note["training_accuracy"] > 0.9

    again = cached_classifier(tmp_path, training_data, SPEC, log=logged.append)
    assert calls == [1] and params_equal(again, trained)  # Read from the file, not trained.

    (tmp_path / SPEC.file_name).write_bytes(b"not a classifier")
    replaced = cached_classifier(tmp_path, training_data, SPEC, log=logged.append)
    assert calls == [1, 1] and params_equal(replaced, trained)
    assert any("unreadable" in line for line in logged)
    # Another spec is another file: never read in place of this one.
    assert ClassifierSpec(epochs=4).file_name != SPEC.file_name
