import numpy as np

from fvae.analysis.probes import knn_accuracy, linear_probe_accuracy


def synthetic_codes(n, separation, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    centers = np.random.default_rng(99).normal(size=(10, 8)) * separation
    return centers[labels] + rng.normal(size=(n, 8)), labels


def test_separable_codes_are_classified_perfectly():
    train, train_labels = synthetic_codes(2000, 20.0, 0)
    test, test_labels = synthetic_codes(500, 20.0, 1)
    assert linear_probe_accuracy(train, train_labels, test, test_labels) == 1.0
    assert knn_accuracy(train, train_labels, test, test_labels) == 1.0


def test_codes_without_class_information_score_near_chance():
    train, _ = synthetic_codes(2000, 0.0, 0)
    test, _ = synthetic_codes(500, 0.0, 1)
    rng = np.random.default_rng(5)
    train_labels, test_labels = rng.integers(0, 10, 2000), rng.integers(0, 10, 500)
    assert linear_probe_accuracy(train, train_labels, test, test_labels) < 0.2
    assert knn_accuracy(train, train_labels, test, test_labels) < 0.2
