"""The measurement tools behind docs/training.md's per-pixel and per-illuminant tables compute what they say."""

from __future__ import annotations

import numpy as np
import pytest

from tools.per_pixel_bounds import knn_predictors
from tools.scores_by_illuminant import markdown, mrae_by_illuminant


def _mrae(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(prediction - truth) / truth))


def test_knn_mean_and_relative_weighted_median():
    x = np.zeros((3, 3))
    y = np.array([[1.0], [2.0], [4.0]])
    predictors = knn_predictors(x, y, k=3)
    query = np.zeros((1, 3))
    assert predictors["3-NN mean"](query)[0, 0] == pytest.approx(7 / 3)
    # weights 1, 1/2, 1/4: the value 1 already holds more than half of the total weight
    assert predictors["3-NN weighted median"](query)[0, 0] == pytest.approx(1.0)


def test_scores_by_illuminant_groups_and_averages():
    report = {
        "methods": {
            "network": {"images": [{"name": "a", "mrae": 0.2}, {"name": "b", "mrae": 0.4}, {"name": "c", "mrae": 3.0}]}
        }
    }
    synth = {
        "files": [
            {"name": "a", "illuminant": "D65"},
            {"name": "b", "illuminant": "D65"},
            {"name": "c", "illuminant": "A"},
        ]
    }
    groups = mrae_by_illuminant(report, synth)
    assert groups == {"network": {"D65": [0.2, 0.4], "A": [3.0]}}
    table = markdown(groups).splitlines()
    assert table[0] == "| method | A (1) | D65 (2) | all |"
    assert table[2] == "| network | 3.000 | 0.300 | 1.200 |"
