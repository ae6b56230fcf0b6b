"""Sample quality in the feature space of fvae's Fashion-MNIST classifier (the weights it ships,
fvae.analysis.classifier): the Frechet distance between two sets of images, improved precision
and recall (fidelity and coverage apart), and the classifier's accuracy on class-conditional
samples.

The Frechet distance fits a Gaussian to each set's features and measures
||m1 - m2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)): 0 for identical statistics, larger the
further apart the two distributions are. It is the formula of the FID, but in the features
of a small classifier trained on Fashion-MNIST, not of Inception-v3 trained on ImageNet, so
its values are not comparable with published FIDs: only with each other, at the same number
of images (the estimate is biased upwards for small sets): `score_images` always uses
SCORE_IMAGES of each set, and every score carries its number of images.

Improved precision and recall (Kynkaanniemi et al. 2019) estimate each set's manifold as the
union of balls around its points, each reaching its k-th nearest neighbour in the same set:
precision is the fraction of samples inside the real images' manifold (fidelity), recall the
fraction of real images inside the samples' manifold (coverage). In this classifier's features
(results/sample_quality.json): real images of only 5 classes keep precision and lose recall;
binarized images lose precision; blurred images keep precision and lose nearly all recall
(their features crowd into a small region inside the real manifold).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fvae.analysis.classifier import Params, classify

# The number of images of each set the scores compare: the size of the test split, so a score
# is the same whatever part of the split a likelihood was evaluated on.
SCORE_IMAGES = 10_000
NEIGHBOURS = 3  # k of precision and recall, as in Kynkaanniemi et al.


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


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)) in float64 (never below 0)."""
    return np.maximum(np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2 * a @ b.T, 0)


def neighbourhood_radii(features: np.ndarray, k: int = NEIGHBOURS, chunk: int = 1000) -> np.ndarray:
    """Squared distance (N,) from each point to its k-th nearest other point of the same set."""
    features = np.asarray(features, np.float64)
    radii = [np.partition(_squared_distances(features[i:i + chunk], features), k, axis=1)[:, k]  # [:, 0] is itself
             for i in range(0, len(features), chunk)]
    return np.concatenate(radii)


def inside_manifold(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """Whether each point (N,) lies in some ball around `centres` of squared radius `radii`."""
    points, centres = np.asarray(points, np.float64), np.asarray(centres, np.float64)
    return np.concatenate([np.any(_squared_distances(points[i:i + chunk], centres) <= radii[None, :], axis=1)
                           for i in range(0, len(points), chunk)])


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = NEIGHBOURS) -> tuple[float, float]:
    """Improved precision (fake inside real's k-NN manifold) and recall (real inside fake's)."""
    precision = np.mean(inside_manifold(fake, real, neighbourhood_radii(real, k)))
    recall = np.mean(inside_manifold(real, fake, neighbourhood_radii(fake, k)))
    return float(precision), float(recall)


def score_images(classifier: Params, images, reference, num: int = SCORE_IMAGES) -> dict:
    """Frechet distance, precision and recall of the first `num` `images` against the first
    `num` `reference` images (fewer only if either set is smaller: "sample_images" says how many)."""
    num = min(num, len(images), len(reference))
    fake, real = features(classifier, images[:num]), features(classifier, reference[:num])
    precision, recall = precision_recall(real, fake)
    return {"frechet_distance": frechet_distance(gaussian_statistics(fake), gaussian_statistics(real)),
            "precision": precision, "recall": recall, "sample_images": num}
