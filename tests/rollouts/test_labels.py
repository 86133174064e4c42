"""rollouts/labels.py: the label columns of a batch and the run's summary, checked against counts by hand."""

from __future__ import annotations

import logging
import math

import datasets
import pytest
from datasets import List, Value

from hf_saerl.rollouts import LabelColumns, MathVerifier
from hf_saerl.rollouts.backends import Completion
from hf_saerl.rollouts.labels import label_columns, label_features, summarise_labels


def _c(text: str, truncated: bool | None = False) -> Completion:
    return Completion(text, 5, truncated)


def test_label_columns_count_each_failure_kind_by_hand():
    rows = [
        # correct, wrong (an answer), no answer, cut off, empty (no answer, counted empty too)
        [_c("The answer is 4"), _c("The answer is 5"), _c("Let me think"), _c("So 2 + 2 is", True), _c("  ")],
        [_c("The answer is 7"), _c("The answer is 7")],
    ]
    rewards = [[1.0, 0.0, 0.0, None, 0.0], [1.0, 1.0]]
    names = LabelColumns(n_correct="right")
    out = label_columns(rows, rewards, MathVerifier(), names, prior=(1.0, 1.0), keep_completions=True)
    assert out["right"] == [1, 2] and out["n_samples"] == [5, 2]
    assert out["n_wrong"] == [1, 0] and out["n_no_answer"] == [2, 0] and out["n_truncated"] == [1, 0]
    assert out["n_empty"] == [1, 0]
    assert out["pass_rate"] == [pytest.approx(1 / 5), 1.0]
    # Beta(1 + c, 1 + k - c): mean (1 + c) / (2 + k), variance mean (1 - mean) / (3 + k)
    assert out["pass_rate_mean"] == [pytest.approx(2 / 7), pytest.approx(3 / 4)]
    assert out["pass_rate_sd"][0] == pytest.approx(math.sqrt((2 / 7) * (5 / 7) / 8))
    assert out["completions"][1] == ["The answer is 7", "The answer is 7"]
    assert math.isnan(out["rewards"][0][3]) and out["rewards"][0][:3] == [1.0, 0.0, 0.0]
    assert set(out) == set(label_features(names, keep_completions=True))


def test_label_features_types():
    features = label_features(LabelColumns())
    assert [features[n] for n in ("pass_rate", "pass_rate_mean", "pass_rate_sd")] == [Value("float32")] * 3
    counts = ("n_samples", "n_correct", "n_wrong", "n_no_answer", "n_truncated", "n_empty")
    assert [features[n] for n in counts] == [Value("int32")] * 6
    assert "completions" not in features
    assert label_features(LabelColumns(), keep_completions=True)["completions"] == List(Value("string"))


def test_summarise_labels_totals_and_warnings(caplog):
    written = datasets.Dataset.from_dict(
        {
            "n_samples": [4, 4, 4],
            "n_correct": [0, 0, 4],
            "n_wrong": [0, 1, 0],
            "n_no_answer": [1, 0, 0],
            "n_truncated": [3, 3, 0],
            "n_empty": [1, 0, 0],
            "pass_rate": [0.0, 0.0, 1.0],
            "pass_rate_mean": [1 / 6, 1 / 6, 5 / 6],
        }
    )
    log = logging.getLogger("hf_saerl.tests.labels")
    with caplog.at_level(logging.INFO, logger="hf_saerl.tests.labels"):
        summary = summarise_labels(written, LabelColumns(), 16, tokens=300, seconds=2.0, log=log)
    assert summary == {
        "rows": 3,
        "samples": 12,
        "correct": 4,
        "wrong": 1,
        "no_answer": 1,
        "truncated": 6,
        "empty": 1,
        "mean_pass_rate": pytest.approx(1 / 3),
        "rows_never_solved": 2,
        "rows_in_band_0.1_0.9": 3,
        "generated_tokens": 300,
        "tokens_per_s": 150.0,
    }
    assert all(r.name == "hf_saerl.tests.labels" for r in caplog.records)
    assert "1 of 12 completions were empty" in caplog.text
    assert "6 of 12 completions (50%)" not in caplog.text  # half is not most
    assert "2 of 3 prompts (67%) were never solved" in caplog.text
    assert summarise_labels(written.select([]), LabelColumns(), 16) == {"rows": 0}
