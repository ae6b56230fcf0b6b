"""The Frechet distance and improved precision and recall against independent computations,
and the scores' behaviour on images."""

import numpy as np
import pytest
import scipy.linalg

from fvae.analysis.sample_scores import (
    frechet_distance,
    gaussian_statistics,
    neighbourhood_radii,
    precision_recall,
)


def random_covariance(rng, dim, rank=None):
    a = rng.normal(size=(dim, rank or dim))
    return a @ a.T / dim


def test_frechet_distance_matches_the_formula_with_scipys_matrix_square_root():
    rng = np.random.default_rng(0)
    for dim in (1, 3, 20):
        mean_a, mean_b = rng.normal(size=dim), rng.normal(size=dim)
        cov_a, cov_b = random_covariance(rng, dim), random_covariance(rng, dim)
        expected = (np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                    - 2 * np.trace(scipy.linalg.sqrtm(cov_a @ cov_b)).real)
        assert frechet_distance((mean_a, cov_a), (mean_b, cov_b)) == pytest.approx(expected, rel=1e-8, abs=1e-8)
        assert frechet_distance((mean_b, cov_b), (mean_a, cov_a)) == pytest.approx(expected, rel=1e-8, abs=1e-8)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    # For commuting (diagonal) covariances: sum (m1 - m2)^2 + sum (s1 - s2)^2 over dimensions.
    mean_a, mean_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    std_a, std_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.1, 0.5])
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((std_a - std_b) ** 2)
    assert frechet_distance((mean_a, np.diag(std_a ** 2)), (mean_b, np.diag(std_b ** 2))) == pytest.approx(expected)


def test_identical_statistics_are_at_distance_zero_even_when_singular():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(10, 32))  # Fewer samples than dimensions: a singular covariance.
    stats = gaussian_statistics(features)
    assert np.linalg.matrix_rank(stats[1]) < 32
    # Zero up to rounding: the square roots of the ~22 zero eigenvalues (each ~1e-16 of the
    # scale) add about 1e-8 each, so compare against the covariance's scale.
    assert abs(frechet_distance(stats, stats)) < 1e-6 * np.trace(stats[1])
    other = gaussian_statistics(rng.normal(size=(10, 32)) + 1.0)
    assert np.isfinite(frechet_distance(stats, other)) and frechet_distance(stats, other) > 32 * 0.5


def test_sample_statistics_converge_to_the_population_distance():
    # Monte Carlo: features drawn from two known Gaussians give about their exact distance.
    rng = np.random.default_rng(2)
    dim = 4
    mean_a, mean_b = np.zeros(dim), np.full(dim, 0.5)
    cov_a, cov_b = random_covariance(rng, dim), random_covariance(rng, dim)
    exact = frechet_distance((mean_a, cov_a), (mean_b, cov_b))
    a = rng.multivariate_normal(mean_a, cov_a, size=200_000)
    b = rng.multivariate_normal(mean_b, cov_b, size=200_000)
    assert frechet_distance(gaussian_statistics(a), gaussian_statistics(b)) == pytest.approx(exact, rel=0.02)


def brute_force_precision_recall(real, fake, k=3):
    """Improved precision and recall from every pairwise distance, one point at a time."""
    def radii(points):
        return np.array([np.sort(np.linalg.norm(points - p, axis=1))[k] for p in points])  # [0]: itself

    def covered(points, centres, radius):
        return np.mean([np.any(np.linalg.norm(centres - p, axis=1) <= radius) for p in points])

    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def test_precision_and_recall_match_brute_force_neighbours():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(300, 16))
    for fake in (rng.normal(size=(200, 16)), rng.normal(size=(250, 16)) * 1.5 + 0.5, real[:100] + 0.01):
        expected = brute_force_precision_recall(real, fake)
        assert precision_recall(real, fake) == pytest.approx(expected, abs=0)
    # Chunking does not change the answer.
    assert np.allclose(neighbourhood_radii(real, 3, chunk=7), neighbourhood_radii(real, 3), rtol=1e-12, atol=0)


def test_dropping_modes_lowers_recall_and_keeps_precision():
    """Five clusters of real features; samples from only two of them are all plausible (high
    precision) but cover two fifths of the real set (recall near 0.4 of the full set's; k=3 in
    8 dimensions leaves recall near 0.86 for samples of the same distribution)."""
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(5, 8)) * 10

    def draw(n, clusters):
        return centres[rng.choice(clusters, n)] + rng.normal(size=(n, 8))

    real = draw(2000, np.arange(5))
    full_precision, full_recall = precision_recall(real, draw(2000, np.arange(5)))
    dropped_precision, dropped_recall = precision_recall(real, draw(2000, np.array([0, 1])))
    assert full_recall > 0.75 and full_precision > 0.75
    assert dropped_recall < 0.5 * full_recall + 0.05 and dropped_precision >= full_precision - 0.02
    blurred_precision, blurred_recall = precision_recall(real, draw(2000, np.arange(5)) * 0.5)
    assert blurred_precision < 0.5  # Samples between the modes: implausible, however diverse.


def test_scores_compare_a_fixed_number_of_images_and_say_how_many(monkeypatch):
    from fvae.analysis import sample_scores

    seen = []
    monkeypatch.setattr(sample_scores, "features", lambda _, images: seen.append(len(images)) or
                        np.asarray(images, np.float64).reshape(len(images), -1)[:, :4])
    rng = np.random.default_rng(5)
    scores = sample_scores.score_images(None, rng.normal(size=(700, 784)), rng.normal(size=(500, 784)), num=600)
    assert scores["sample_images"] == 500 and seen == [500, 500]
    scores = sample_scores.score_images(None, rng.normal(size=(700, 784)), rng.normal(size=(900, 784)), num=600)
    assert scores["sample_images"] == 600 and seen[2:] == [600, 600]
    assert set(scores) == {"frechet_distance", "precision", "recall", "sample_images"}
