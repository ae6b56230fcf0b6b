"""Sample quality: the Frechet distance between two sets of images in the feature space of
fvae's own Fashion-MNIST classifier (fvae.analysis.classifier), and the classifier's accuracy on
class-conditional samples.

The Frechet distance fits a Gaussian to each set's features and measures
||m1 - m2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)): 0 for identical statistics, larger the
further apart the two distributions are. It is the formula of the FID, but in the features
of a small classifier trained on Fashion-MNIST, not of Inception-v3 trained on ImageNet, so
its values are not comparable with published FIDs: only with each other, at the same number
of images (the estimate is biased upwards for small sets).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fvae.analysis.classifier import Params, classify


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F, F) of features (N, F), in float64."""
    features = np.asarray(features, np.float64)
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Frechet distance between the Gaussians (mean, covariance) a and b.

    Tr (C1 C2)^(1/2) is computed as the trace of the square root of the symmetric matrix
    C1^(1/2) C2 C1^(1/2) (same eigenvalues as C1 C2), which stays real and stable when the
    covariances are singular.
    """
    (mean_a, cov_a), (mean_b, cov_b) = a, b
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)))
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def features(classifier: Params, images: jax.Array | np.ndarray) -> np.ndarray:
    """Classifier features (N, F) of images (N, 784), uint8 or in [0, 1]."""
    return np.asarray(classify(classifier, jnp.asarray(images))[1])


def frechet_distance_of_images(classifier: Params, images_a, images_b) -> float:
    """Frechet distance between two image sets (N, 784), uint8 or in [0, 1], in classifier features."""
    return frechet_distance(gaussian_statistics(features(classifier, images_a)),
                            gaussian_statistics(features(classifier, images_b)))


def class_accuracy(classifier: Params, images, labels) -> float:
    """Fraction of images (N, 784) the classifier assigns to their intended class labels (N,)."""
    logits = np.asarray(classify(classifier, jnp.asarray(images))[0])
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))
