"""Representation quality of latent codes: linear probe and k-nearest-neighbour accuracy.

Uses scikit-learn's LogisticRegression and KNeighborsClassifier: well-tested, standard
implementations that readers of a paper recognise, rather than home-made solvers.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def linear_probe_accuracy(train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray,
                          test_labels: np.ndarray, max_iter: int = 1000) -> float:
    """Test accuracy of a multinomial logistic regression fitted on standardized train codes."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    probe.fit(np.asarray(train_codes), np.asarray(train_labels))
    return float(probe.score(np.asarray(test_codes), np.asarray(test_labels)))


def knn_accuracy(train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray,
                 test_labels: np.ndarray, k: int = 5) -> float:
    """Test accuracy of a k-nearest-neighbour vote (Euclidean) among the train codes."""
    knn = KNeighborsClassifier(n_neighbors=k).fit(np.asarray(train_codes), np.asarray(train_labels))
    return float(knn.score(np.asarray(test_codes), np.asarray(test_labels)))
