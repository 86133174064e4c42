"""Filter / weights / concept_margin columns equal what the statistics read; DPO loss by hand; what the
interventions, ``dpo_loss`` and the concept-shaped DPO trainer refuse."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from datasets import Dataset
from sklearn.exceptions import NotFittedError

from hf_saerl import SAEEncoder
from hf_saerl.audit import (
    PreferenceAudit,
    add_concept_margin,
    add_pair_weights,
    concept_margin,
    dpo_loss,
    filter_pairs,
    pair_weights,
)
from hf_saerl.errors import InvalidParameterError, NonFiniteError, ParameterTypeError, RowMismatchError


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    n = 200
    c = (rng.random((n, 12)) < 0.3).astype(float)
    r = (rng.random((n, 12)) < 0.3).astype(float)
    c[:, [0, 1, 2]] = (rng.random(n) < 0.8)[:, None]  # planted chosen concept over latents 0-2, partly firing
    c[: n // 2, 2] = 0.0
    r[:, [0, 1, 2]] = (rng.random(n) < 0.2)[:, None]
    audit = PreferenceAudit(n_regions=1, similarity=0.4).fit_features(
        sp.csr_matrix(c), c * 0.5, sp.csr_matrix(r), r * 0.5
    )
    return audit, c, r, Dataset.from_dict({"row": list(range(n))})


def _hand_disparity(c, r, latents):
    return (c[:, latents] > 0).mean(axis=1) - (r[:, latents] > 0).mean(axis=1)


def test_planted_concept_is_the_flagged_chosen_one(fitted):
    audit, *_ = fitted
    k = audit.concept_of(0)
    assert audit.concepts_.concepts_[k].tolist() == [0, 1, 2]
    assert audit.flagged(leaning="chosen")["concept"].tolist() == [k]


def test_margin_weights_filter_are_exactly_the_disparity(fitted):
    audit, c, r, ds = fitted
    k = audit.concept_of(0)
    hand = _hand_disparity(c, r, [0, 1, 2])
    assert sorted(set(np.round(hand, 6))) != [0.0]
    np.testing.assert_allclose(concept_margin(audit), hand)  # concepts=None -> the flagged chosen concept
    out = add_concept_margin(ds, audit, [k])
    np.testing.assert_allclose(out["concept_margin"], hand.astype(np.float32))
    # the column the statistics were computed from: its mean is the global delta
    glob = audit.statistics_.query("region == -1 and concept == @k").iloc[0]
    assert glob["delta"] == pytest.approx(hand.mean())

    w = pair_weights(audit, [k], strength=0.5, min_weight=0.1)
    np.testing.assert_allclose(w, np.maximum(1 - 0.5 * hand, 0.1))
    wn = add_pair_weights(ds, audit, [k], strength=-1.0, normalize=True, column="w")["w"]
    amp = 1 + hand
    np.testing.assert_allclose(wn, amp / amp.mean(), rtol=1e-6)

    kept, counts = filter_pairs(ds, audit, [k], threshold=2 / 3)
    drop = hand >= 2 / 3 - 1e-12
    assert counts["n_removed"] == drop.sum() > 0 and counts["n_kept"] == len(kept) == (~drop).sum()
    assert kept["row"] == np.flatnonzero(~drop).tolist()
    assert counts["per_concept"] == {k: int(drop.sum())}
    _, rej_counts = filter_pairs(ds, audit, [k], threshold=1 / 3, leaning="rejected")
    assert rej_counts["n_removed"] == (hand <= -1 / 3 + 1e-12).sum()


def test_intervention_errors(fitted):
    audit, _, _, ds = fitted
    with pytest.raises(RowMismatchError, match="audit saw 200 pairs"):
        add_concept_margin(ds.select(range(10)), audit)
    with pytest.raises(InvalidParameterError, match="Unknown concept"):
        pair_weights(audit, [10_000])
    with pytest.raises(InvalidParameterError, match="threshold"):
        filter_pairs(ds, audit, threshold=0.0)
    with pytest.raises(InvalidParameterError, match="leaning must be 'chosen' or 'rejected'; got 'both'"):
        filter_pairs(ds, audit, leaning="both")


def test_dpo_loss_equals_hand_computation():
    pc, pr = torch.tensor([-3.0, -1.0, -2.5]), torch.tensor([-4.0, -1.5, -2.0])
    rc, rr = torch.tensor([-3.5, -1.2, -2.2]), torch.tensor([-3.8, -1.1, -2.4])
    margin = torch.tensor([1.0, -0.5, 0.0])
    beta, lam = 0.5, 2.0
    hand = []
    for i in range(3):
        x = beta * ((pc[i] - rc[i]) - (pr[i] - rr[i])).item() + lam * margin[i].item()
        hand.append(-math.log(1 / (1 + math.exp(-x))))
    got = dpo_loss(pc, pr, rc, rr, beta=beta, margin=margin, lam=lam, reduction="none")
    np.testing.assert_allclose(got.numpy(), hand, rtol=1e-6)
    assert dpo_loss(pc, pr, rc, rr, beta=beta, margin=margin, lam=lam).item() == pytest.approx(np.mean(hand))
    # lam > 0 shrinks the gradient on a pair whose chosen side carries the concept (suppression)
    logp = pc.clone().requires_grad_()
    dpo_loss(logp, pr, rc, rr, beta=beta, margin=margin, lam=lam, reduction="sum").backward()
    shaped = logp.grad[0].abs().item()
    logp.grad = None
    dpo_loss(logp, pr, rc, rr, beta=beta, reduction="sum").backward()
    assert shaped < logp.grad[0].abs().item()
    with pytest.raises(InvalidParameterError, match="margin has shape"):
        dpo_loss(pc, pr, rc, rr, margin=torch.zeros(2), lam=1.0)
    with pytest.raises(InvalidParameterError, match="reduction must be 'mean', 'sum' or 'none'"):
        dpo_loss(pc, pr, rc, rr, reduction="max")


# ---------------------------------------------------------------------------------- refusals (moved here from
# tests/reliability/test_audit.py): the error class, a message naming the problem, the input left as it was
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


def concept(audit):
    return int(audit.statistics_.iloc[0]["concept"])


def logps(n=3):
    return [torch.linspace(-3.0, -1.0, n) + k for k in range(4)]


def test_filter_pairs_refuses_a_shuffled_copy_and_removes_nothing(encoded, pairs):
    shuffled = pairs.shuffle(seed=2)
    with pytest.raises(RowMismatchError, match=r"rows differ from the audited pairs \(first: row \d+\).*same order"):
        filter_pairs(shuffled, encoded, [concept(encoded)], threshold=0.5)
    assert len(shuffled) == 12 and sorted(shuffled["i"]) == list(range(12))  # the input is as it was


def test_add_concept_margin_refuses_a_shuffled_copy(encoded, pairs):
    with pytest.raises(RowMismatchError, match="reordered or edited since the audit"):
        add_concept_margin(pairs.shuffle(seed=5), encoded, [concept(encoded)])


def test_add_pair_weights_refuses_an_edited_row_naming_it(encoded, pairs):
    edited = pairs.map(
        lambda row, i: {"rejected": row["rejected"] + "?" if i == 7 else row["rejected"]}, with_indices=True
    )
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


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"beta": float("nan")}, "beta must be a finite number, got nan"),
        ({"lam": float("inf"), "margin": torch.zeros(3)}, "lam must be a finite number, got inf"),
        (
            {"margin": torch.tensor([0.0, float("nan"), 1.0]), "lam": 1.0},
            r"margin has 1 NaN or infinite value\(s\) "
            r"\(first: nan at pair 1\)",
        ),
    ],
)
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


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"strength": float("nan")}, NonFiniteError, "strength must be a finite number, got nan"),
        ({"min_weight": float("nan")}, NonFiniteError, "min_weight must be a finite number, got nan"),
        ({"min_weight": -1.0}, InvalidParameterError, r"min_weight must be in \[0, inf\), got -1.0"),
        ({"normalize": "yes"}, ParameterTypeError, "normalize must be a bool, got 'yes'"),
    ],
)
def test_pair_weights_refuse_bad_numbers(encoded, kwargs, error, match):
    with pytest.raises(error, match=match):
        pair_weights(encoded, [concept(encoded)], **kwargs)


def test_filter_threshold_as_a_string_is_a_type_error(encoded, pairs):
    with pytest.raises(ParameterTypeError, match=r"threshold must be a number, got '0\.5'"):
        filter_pairs(pairs, encoded, threshold="0.5")


def test_fractional_concept_ids_are_refused(encoded):
    with pytest.raises(InvalidParameterError, match=r"concepts must be an integer, got 0.5"):
        concept_margin(encoded, [0.5])  # int(0.5) == 0 used to pick concept 0 silently


@pytest.mark.parametrize(
    "method, call",
    [
        ("filter_pairs", lambda audit, ds: filter_pairs(ds, audit, [0])),
        ("add_concept_margin", lambda audit, ds: add_concept_margin(ds, audit, [0])),
        ("add_pair_weights", lambda audit, ds: add_pair_weights(ds, audit, [0])),
        ("concept_margin", lambda audit, ds: concept_margin(audit, [0])),
        ("pair_weights", lambda audit, ds: pair_weights(audit, [0])),
    ],
)
def test_unfitted_audit_names_the_method_and_what_to_call(pairs, method, call):
    with pytest.raises(
        NotFittedError,
        match=rf"This PreferenceAudit is not fitted yet, so {method} cannot run. Call "
        r"fit\(dataset\) or fit_features\(...\) first",
    ):
        call(PreferenceAudit(), pairs)


# ---------------------------------------------------------------------------------- the DPO trainer's refusals
def test_trainer_refuses_a_nan_lambda_before_building_anything():
    pytest.importorskip("trl")
    from hf_saerl.integrations.dpo import ConceptShapedDPOTrainer

    with pytest.raises(NonFiniteError, match="concept_lambda must be a finite number, got nan"):
        ConceptShapedDPOTrainer(None, concept_lambda=float("nan"))
    with pytest.raises(ParameterTypeError, match=r"concept_lambda must be a number, got '1\.0'"):
        ConceptShapedDPOTrainer(None, concept_lambda="1.0")


def test_trainer_refuses_a_nan_margin_at_construction_naming_the_row(pairs):
    pytest.importorskip("trl")
    from hf_saerl.integrations.dpo import ConceptShapedDPOTrainer

    margins = [0.5] * 12
    margins[4] = float("nan")
    data = pairs.add_column("concept_margin", margins)
    with pytest.raises(
        NonFiniteError,
        match=r"train_dataset's 'concept_margin' column has 1 NaN, infinite or "
        r"missing value\(s\) \(first: nan at row 4\)",
    ):
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
