"""The Frechet distance against independent computations, and the score's behaviour on images."""

import numpy as np
import pytest
import scipy.linalg

from fvae.analysis.sample_scores import frechet_distance, gaussian_statistics


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
