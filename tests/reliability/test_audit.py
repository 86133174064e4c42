"""Issue 13, "nothing silent", for the preference audit, its interventions, ``dpo_loss`` and the DPO trainer: one
test per bad input or fault.

Each case asserts the error class and that its message names the problem; where data is involved, also that the
input is left as it was (nothing removed, nothing fitted).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from datasets import Dataset
from sklearn.exceptions import NotFittedError

from hf_saerl import SAEEncoder
from hf_saerl.audit import (PreferenceAudit, add_concept_margin, add_pair_weights, concept_margin, dpo_loss,
                            filter_pairs, pair_weights)
from hf_saerl.core.validation import is_fitted
from hf_saerl.errors import InvalidParameterError, NonFiniteError, ParameterTypeError, RowMismatchError


@pytest.fixture(scope="module")
def pairs():
    prompts = ["2+2?", "3+3?", "Name a prime.", "Solve x^2=4."] * 3
    chosen = ["4, surely.", "6, surely.", "7 is prime.", "x = 2 or x = -2."] * 3
    rejected = ["5", "7", "9", "x = 3"] * 3
    return Dataset.from_dict({"prompt": prompts, "chosen": chosen, "rejected": rejected, "i": list(range(12))})


@pytest.fixture(scope="module")
def encoded(model, sae, tokenizer, pairs):
    """An audit fitted by ``fit``, so it keeps a digest of every pair."""
    encoder = SAEEncoder(model, sae, tokenizer=tokenizer, max_length=64, token_budget=64)
    return PreferenceAudit(encoder, n_regions=1, min_support=1, progress=False).fit(pairs)


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    c = (rng.random((40, 10)) < 0.4).astype(float)
    r = (rng.random((40, 10)) < 0.4).astype(float)
    c[:, :2] = 1.0
    return sp.csr_matrix(c), sp.csr_matrix(r)


def concept(audit):
    return int(audit.statistics_.iloc[0]["concept"])


def logps(n=3):
    return [torch.linspace(-3.0, -1.0, n) + k for k in range(4)]


# ---------------------------------------------------------------------------------- row identity (family 3)
def test_filter_pairs_refuses_a_shuffled_copy_and_removes_nothing(encoded, pairs):
    shuffled = pairs.shuffle(seed=2)
    with pytest.raises(RowMismatchError, match=r"rows differ from the audited pairs \(first: row \d+\).*same order"):
        filter_pairs(shuffled, encoded, [concept(encoded)], threshold=0.5)
    assert len(shuffled) == 12 and sorted(shuffled["i"]) == list(range(12))  # the input is as it was


def test_add_concept_margin_refuses_a_shuffled_copy(encoded, pairs):
    with pytest.raises(RowMismatchError, match="reordered or edited since the audit"):
        add_concept_margin(pairs.shuffle(seed=5), encoded, [concept(encoded)])


def test_add_pair_weights_refuses_an_edited_row_naming_it(encoded, pairs):
    edited = pairs.map(lambda row, i: {"rejected": row["rejected"] + "?" if i == 7 else row["rejected"]},
                       with_indices=True)
    with pytest.raises(RowMismatchError, match=r"1 of the dataset's 12 rows differ .*first: row 7"):
        add_pair_weights(edited, encoded, [concept(encoded)])


def test_a_dataset_without_the_pair_columns_is_only_length_checked_and_says_so(encoded, pairs):
    with pytest.warns(UserWarning, match=r"filter_pairs: the dataset lacks \['prompt', 'chosen', 'rejected'\]"):
        filter_pairs(pairs.select_columns(["i"]), encoded, [concept(encoded)], threshold=0.5)


def test_dpo_loss_refuses_log_probs_that_would_broadcast():
    pc, pr, rc, rr = logps()
    with pytest.raises(InvalidParameterError, match=r"must each have shape \(batch,\).*'ref_chosen_logps': \(3, 1\)"):
        dpo_loss(pc, pr, rc[:, None], rr)  # (3,) against (3, 1) would broadcast to a (3, 3) loss


def test_dpo_loss_checks_the_margin_shape_even_with_lam_zero():
    pc, pr, rc, rr = logps()
    with pytest.raises(InvalidParameterError, match=r"margin has shape \(2,\) but the batch has \(3,\) pairs"):
        dpo_loss(pc, pr, rc, rr, margin=torch.zeros(2), lam=0.0)


# ---------------------------------------------------------------------------------- non-finite numbers (family 1)
@pytest.mark.parametrize("kwargs, match", [
    ({"beta": float("nan")}, "beta must be a finite number, got nan"),
    ({"lam": float("inf"), "margin": torch.zeros(3)}, "lam must be a finite number, got inf"),
    ({"margin": torch.tensor([0.0, float("nan"), 1.0]), "lam": 1.0}, r"margin has 1 NaN or infinite value\(s\) "
                                                                     r"\(first: nan at pair 1\)"),
])
def test_dpo_loss_refuses_non_finite_numbers(kwargs, match):
    with pytest.raises(NonFiniteError, match=match):
        dpo_loss(*logps(), **kwargs)


def test_dpo_loss_refuses_lam_without_a_margin():
    with pytest.raises(InvalidParameterError, match=r"lam=1.0 shapes the loss with a margin, but margin is None"):
        dpo_loss(*logps(), lam=1.0)


def test_dpo_loss_refuses_a_non_positive_beta():
    with pytest.raises(InvalidParameterError, match=r"beta must be in \(0, inf\), got 0"):
        dpo_loss(*logps(), beta=0)


def test_filter_threshold_nan_is_non_finite(encoded, pairs):
    with pytest.raises(NonFiniteError, match="threshold must be a finite number, got nan"):
        filter_pairs(pairs, encoded, threshold=float("nan"))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"strength": float("nan")}, NonFiniteError, "strength must be a finite number, got nan"),
    ({"min_weight": float("nan")}, NonFiniteError, "min_weight must be a finite number, got nan"),
    ({"min_weight": -1.0}, InvalidParameterError, r"min_weight must be in \[0, inf\), got -1.0"),
    ({"normalize": "yes"}, ParameterTypeError, "normalize must be a bool, got 'yes'"),
])
def test_pair_weights_refuse_bad_numbers(encoded, kwargs, error, match):
    with pytest.raises(error, match=match):
        pair_weights(encoded, [concept(encoded)], **kwargs)


@pytest.mark.parametrize("param, value, error, match", [
    ("z_threshold", float("nan"), NonFiniteError, "z_threshold must be a finite number, got nan"),
    ("activation_threshold", float("inf"), NonFiniteError, "activation_threshold must be a finite number"),
    ("batch_size", 2.0, InvalidParameterError, r"batch_size must be an integer, got 2.0"),
    ("top_k", True, InvalidParameterError, "top_k must be an integer, got True"),
])
def test_audit_parameters_are_checked_before_fitting(features, param, value, error, match):
    c, r = features
    audit = PreferenceAudit(n_regions=1, min_support=1, progress=False).set_params(**{param: value})
    with pytest.raises(error, match=match):
        audit.fit_features(c, c, r, r)
    assert not is_fitted(audit)  # nothing half-fitted


def test_region_ids_with_fractions_are_refused(features):
    c, r = features
    regions = np.zeros(40)
    regions[3] = 0.5
    with pytest.raises(InvalidParameterError, match=r"regions must be integer ids, got 0.5 at pair 3"):
        PreferenceAudit(min_support=1, progress=False).fit_features(c, c, r, r, regions=regions)


def test_texts_of_other_pairs_are_refused(features):
    c, r = features
    with pytest.raises(InvalidParameterError, match=r"one text per pair \(40\) each; got lengths \[40, 39\]"):
        PreferenceAudit(n_regions=1, min_support=1, progress=False).fit_features(
            c, c, r, r, texts=(["c"] * 40, ["r"] * 39))


# ---------------------------------------------------------------------------------- types at the edge (family 4)
def test_filter_threshold_as_a_string_is_a_type_error(encoded, pairs):
    with pytest.raises(ParameterTypeError, match="threshold must be a number, got '0.5'"):
        filter_pairs(pairs, encoded, threshold="0.5")


def test_fractional_concept_ids_are_refused(encoded):
    with pytest.raises(InvalidParameterError, match=r"concepts must be an integer, got 0.5"):
        concept_margin(encoded, [0.5])  # int(0.5) == 0 used to pick concept 0 silently


# ---------------------------------------------------------------------------------- unfitted use (family 8)
@pytest.mark.parametrize("method, call", [
    ("filter_pairs", lambda audit, ds: filter_pairs(ds, audit, [0])),
    ("add_concept_margin", lambda audit, ds: add_concept_margin(ds, audit, [0])),
    ("add_pair_weights", lambda audit, ds: add_pair_weights(ds, audit, [0])),
    ("concept_margin", lambda audit, ds: concept_margin(audit, [0])),
    ("pair_weights", lambda audit, ds: pair_weights(audit, [0])),
    ("report", lambda audit, ds: audit.report()),
    ("flagged", lambda audit, ds: audit.flagged()),
])
def test_unfitted_audit_names_the_method_and_what_to_call(pairs, method, call):
    with pytest.raises(NotFittedError, match=rf"This PreferenceAudit is not fitted yet, so {method} cannot run. Call "
                                             r"fit\(dataset\) or fit_features\(...\) first"):
        call(PreferenceAudit(), pairs)


# ---------------------------------------------------------------------------------- the DPO trainer
def test_trainer_refuses_a_nan_lambda_before_building_anything():
    pytest.importorskip("trl")
    from hf_saerl.integrations.dpo import ConceptShapedDPOTrainer

    with pytest.raises(NonFiniteError, match="concept_lambda must be a finite number, got nan"):
        ConceptShapedDPOTrainer(None, concept_lambda=float("nan"))
    with pytest.raises(ParameterTypeError, match="concept_lambda must be a number, got '1.0'"):
        ConceptShapedDPOTrainer(None, concept_lambda="1.0")


def test_trainer_refuses_a_nan_margin_at_construction_naming_the_row(pairs):
    pytest.importorskip("trl")
    from hf_saerl.integrations.dpo import ConceptShapedDPOTrainer

    margins = [0.5] * 12
    margins[4] = float("nan")
    data = pairs.add_column("concept_margin", margins)
    with pytest.raises(NonFiniteError, match=r"train_dataset's 'concept_margin' column has 1 NaN, infinite or "
                                             r"missing value\(s\) \(first: nan at row 4\)"):
        ConceptShapedDPOTrainer(None, train_dataset=data, concept_lambda=1.0)


def test_trainer_refuses_an_eval_dataset_without_margins(pairs):
    pytest.importorskip("trl")
    from hf_saerl.integrations.dpo import ConceptShapedDPOTrainer

    train = pairs.add_column("concept_margin", [0.0] * 12)
    with pytest.raises(InvalidParameterError, match="eval_dataset has no 'concept_margin' column"):
        ConceptShapedDPOTrainer(None, train_dataset=train, eval_dataset=pairs, concept_lambda=1.0)


def test_margin_collator_refuses_a_nan_margin_before_collating():
    pytest.importorskip("trl")
    from hf_saerl.integrations.dpo import MarginCollator

    calls = []
    collator = MarginCollator(lambda examples: calls.append(examples) or {})
    with pytest.raises(NonFiniteError, match=r"'concept_margin' \(first: nan at batch position 1\)"):
        collator([{"concept_margin": 0.5}, {"concept_margin": None}])
    with pytest.raises(ParameterTypeError, match=r"'concept_margin' must hold one number per pair, got '0.5'"):
        collator([{"concept_margin": "0.5"}])
    assert calls == []  # the wrapped collator never ran


def test_an_audit_fitted_from_features_with_pairs_refuses_a_shuffled_copy(features):
    c, r = features
    data = Dataset.from_dict({"prompt": [f"p{k}" for k in range(40)], "chosen": [f"c{k}" for k in range(40)],
                              "rejected": [f"r{k}" for k in range(40)]})
    audit = PreferenceAudit(n_regions=1, min_support=1, progress=False).fit_features(c, c, r, r, pairs=data)
    with pytest.raises(RowMismatchError, match=r"rows differ from the audited pairs"):
        add_concept_margin(data.shuffle(seed=0), audit, [concept(audit)])
    assert len(add_concept_margin(data, audit, [concept(audit)])) == 40
    with pytest.raises(RowMismatchError, match=r"pairs has \[39, 39, 39\] prompts/chosen/rejected but the features "
                                               r"have 40 rows"):
        PreferenceAudit(n_regions=1, min_support=1, progress=False).fit_features(c, c, r, r,
                                                                                 pairs=data.select(range(39)))
