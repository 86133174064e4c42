"""Row selection by a probe's scores (filter thresholds, bands): bad thresholds are refused (issue 13, "nothing
silent"), and the dataset is not changed.

Each case asserts the error class and that the message names the problem; where a dataset is involved, also
that it was not changed.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from datasets import Dataset

from hf_saerl import DifficultyProbe, QualityProbe
from hf_saerl.errors import (
    InvalidParameterError,
    NonFiniteError,
    ParameterTypeError,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
NAN, INF = float("nan"), float("inf")


def features(n=60, d=10, seed=0):
    X = sp.random(n, d, density=0.5, random_state=seed, format="csr", dtype=np.float32)
    X.data += 1.0
    return X


@pytest.fixture(scope="module")
def probe():
    return QualityProbe(d_sae=10, cv=None).fit(features(), np.arange(60) % 2 == 0)


@pytest.fixture
def scored():
    return Dataset.from_dict({"quality": [0.1, 0.6, 0.9]})


# ---------------------------------------------------------------------------------- non-finite numbers (family 1)
def test_filter_nan_threshold_is_refused(probe, scored):
    with pytest.raises(NonFiniteError, match="threshold must be a finite number, got nan"):
        probe.filter(scored, threshold=NAN)


def test_filter_infinite_threshold_is_refused(probe, scored):
    with pytest.raises(NonFiniteError, match="threshold must be a finite number, got inf"):
        probe.filter(scored, threshold=INF)


def test_filter_threshold_above_one_on_a_classifier(probe, scored):
    with pytest.raises(InvalidParameterError, match=r"threshold=1.5 is outside \[0, 1\].*keep no row"):
        probe.filter(scored, threshold=1.5)


def test_filter_threshold_below_zero_on_a_classifier(probe, scored):
    with pytest.raises(InvalidParameterError, match=r"threshold=-0.5 is outside \[0, 1\].*keep every row"):
        probe.filter(scored, threshold=-0.5)


def test_filter_threshold_of_the_wrong_type(probe, scored):
    with pytest.raises(ParameterTypeError, match=r"threshold must be a number, got '0.5'"):
        probe.filter(scored, threshold="0.5")


def test_regression_probe_accepts_any_finite_threshold():
    """Not an error: a ridge probe's quality is a score, not a probability, so 2.0 is a legitimate cut."""
    X = features()
    reg = QualityProbe(d_sae=10, cv=None, task="regression").fit(X, np.linspace(0, 4, 60))
    kept = reg.filter(Dataset.from_dict({"quality": [1.0, 3.0]}), threshold=2.0)
    assert kept["quality"] == [3.0]


def test_filter_nan_drop_fraction_is_refused(probe, scored):
    with pytest.raises(InvalidParameterError, match="drop_fraction must be in"):
        probe.filter(scored, drop_fraction=NAN)


def test_band_with_nan_bound_is_refused(scored):
    dp = DifficultyProbe(d_sae=10, cv=None).fit(features(), np.linspace(0, 1, 60))
    with pytest.raises(InvalidParameterError, match="low=nan"):
        dp.select_band(Dataset.from_dict({"difficulty": [0.5]}), low=NAN, high=0.7)
