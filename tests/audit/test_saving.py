"""PreferenceAudit save_pretrained / from_pretrained / push_to_hub: bit-identical reload, no pickle, clear refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from datasets import Dataset
from sklearn.exceptions import NotFittedError

import hf_saerl.core.files as files_module
from hf_saerl import SAEEncoder
from hf_saerl.audit import (
    PreferenceAudit,
    add_concept_margin,
    add_pair_weights,
    concept_margin,
    filter_pairs,
    pair_weights,
)
from hf_saerl.errors import (
    BundleError,
    HookMismatchError,
    InvalidParameterError,
    NonFiniteError,
    RowMismatchError,
    WidthMismatchError,
)
from hf_saerl.testing import edit_arrays, edit_json

N = 120


def planted(seed=0):
    """Two topics; latents 0-2 lean chosen in topic 0; background latents 10-19 fire on both sides."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 2, N)
    c, r = np.zeros((N, 24)), np.zeros((N, 24))
    c[:, 20:22][topic == 0] = r[:, 20:22][topic == 0] = 1.0
    c[:, 22:24][topic == 1] = r[:, 22:24][topic == 1] = 1.0
    c[:, :3] = ((rng.random(N) < 0.7) & (topic == 0))[:, None]
    r[:, :3] = (rng.random(N) < 0.1)[:, None]
    c[:, 10:20] = rng.random((N, 10)) < 0.3
    r[:, 10:20] = rng.random((N, 10)) < 0.3
    chosen = [f"chosen {i} " + "step " * (i % 4) for i in range(N)]
    rejected = [f"rejected {i}" for i in range(N)]
    return sp.csr_matrix(c * 2.0), sp.csr_matrix(r * 2.0), chosen, rejected


@pytest.fixture(scope="module")
def fitted():
    c, r, chosen, rejected = planted()
    audit = PreferenceAudit(n_regions=2, similarity=0.4, min_support=2, progress=False)
    audit.fit_features(c, c * 0.25, r, r * 0.25, prompt_max=c * 0.5, texts=(chosen, rejected))
    return audit


@pytest.fixture(scope="module")
def encoder(model, sae, tokenizer):
    return SAEEncoder(model, sae, tokenizer=tokenizer, max_length=64, token_budget=64)


@pytest.fixture(scope="module")
def pairs():
    prompts = ["2+2?", "3+3?", "Name a prime.", "Solve x^2=4."] * 3
    chosen = ["4, surely.", "6, surely.", "7 is prime.", "x = 2 or x = -2."] * 3
    rejected = ["5", "7", "9", "x = 3"] * 3
    return Dataset.from_dict({"prompt": prompts, "chosen": chosen, "rejected": rejected})


@pytest.fixture(scope="module")
def encoded(encoder, pairs):
    return PreferenceAudit(encoder, n_regions=1, min_support=1, progress=False).fit(pairs)


def _same(a, b):
    """Two audits agree on everything the report and the interventions read."""
    pd.testing.assert_frame_equal(a.statistics_, b.statistics_)
    for name in (
        "chosen_max_",
        "chosen_freq_",
        "rejected_max_",
        "rejected_freq_",
        "chosen_fires_",
        "rejected_fires_",
        "disparity_",
    ):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and (x != y).nnz == 0, name
    assert [g.tolist() for g in a.concepts_.concepts_] == [g.tolist() for g in b.concepts_.concepts_]
    assert np.array_equal(a.concepts_.latent_concept_, b.concepts_.latent_concept_)
    assert (a.concepts_.membership_ != b.concepts_.membership_).nnz == 0
    assert np.array_equal(a.regions_, b.regions_) and a.region_names_ == b.region_names_
    assert (a.n_pairs_, a.d_sae_, a.n_truncated_, a.texts_) == (b.n_pairs_, b.d_sae_, b.n_truncated_, b.texts_)


def test_save_load_round_trip_is_bit_identical(fitted, tmp_path):
    fitted.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {
        "config.json",
        "README.md",
        "audit.json",
        "audit.safetensors",
        "texts.json",
    }
    state = json.loads((tmp_path / "audit.json").read_text())
    assert state["format_version"] == 1 and state["n_pairs"] == N and state["hf_saerl_version"]
    card = (tmp_path / "README.md").read_text()
    assert "library_name: hf_saerl" in card and f"{N} pairs" in card and "preference-audit" in card
    (tmp_path / "junk.pkl").write_bytes(b"\x80\x04 never unpickled")

    loaded = PreferenceAudit.from_pretrained(tmp_path)
    _same(fitted, loaded)
    assert loaded.get_params() == fitted.get_params()
    for kwargs in ({}, {"top": 3, "n_examples": 2, "flagged_only": True}, {"region": 0}):
        a, b = fitted.report(**kwargs), loaded.report(**kwargs)
        pd.testing.assert_frame_equal(a.to_pandas(), b.to_pandas())
        assert a.to_markdown() == b.to_markdown() and a.summary == b.summary
    k = fitted.concept_of(0)
    ds = Dataset.from_dict({"row": list(range(N))})
    assert np.array_equal(concept_margin(fitted, [k]), concept_margin(loaded, [k]))
    assert np.array_equal(concept_margin(fitted), concept_margin(loaded))  # the flagged chosen-leaning concepts
    assert (
        add_concept_margin(ds, loaded, [k])["concept_margin"] == add_concept_margin(ds, fitted, [k])["concept_margin"]
    )
    assert np.array_equal(pair_weights(fitted, [k]), pair_weights(loaded, [k]))
    assert add_pair_weights(ds, loaded, [k])["weight"] == add_pair_weights(ds, fitted, [k])["weight"]
    (kept_a, counts_a), (kept_b, counts_b) = filter_pairs(ds, fitted, [k]), filter_pairs(ds, loaded, [k])
    assert kept_a["row"] == kept_b["row"] and counts_a == counts_b
    assert np.array_equal(loaded.concept_scores(k, "rejected"), fitted.concept_scores(k, "rejected"))


def test_audit_fitted_from_a_dataset_round_trips_with_its_encoder(encoded, encoder, pairs, tmp_path, model, tokenizer):
    assert encoded.encoder_config_["hook_name"] == encoder.hook_name and encoded.pair_digests_.shape == (12,)
    encoded.save_pretrained(tmp_path)
    loaded = PreferenceAudit.from_pretrained(tmp_path, encoder=encoder, progress=True)
    _same(encoded, loaded)
    assert loaded.encoder is encoder and loaded.progress is True
    assert loaded.encoder_config_ == json.loads(json.dumps(encoded.encoder_config_))
    assert np.array_equal(loaded.pair_digests_, encoded.pair_digests_)
    assert all(np.array_equal(loaded.n_tokens_[s], encoded.n_tokens_[s]) for s in ("chosen", "rejected"))
    k = int(encoded.statistics_.iloc[0]["concept"])
    assert (
        add_concept_margin(pairs, loaded, [k])["concept_margin"]
        == add_concept_margin(pairs, encoded, [k])["concept_margin"]
    )
    assert loaded.fit(pairs).statistics_.equals(encoded.statistics_)  # the encoder passed in re-encodes the same

    from hf_saerl.testing import tiny_sae

    narrow = SAEEncoder(model, tiny_sae(d_in=32, d_sae=64), tokenizer=tokenizer)
    with pytest.raises(WidthMismatchError, match=r"The encoder's SAE has d_sae=64, but the audit .* at d_sae=128"):
        PreferenceAudit.from_pretrained(tmp_path, encoder=narrow)
    other_hook = SAEEncoder(
        model, tiny_sae(d_in=32, d_sae=128, hook_name="blocks.0.hook_resid_post"), tokenizer=tokenizer
    )
    with pytest.raises(
        HookMismatchError, match=r"reads 'blocks.0.hook_resid_post', but the audit .* 'blocks.1.hook_resid_post'"
    ):
        PreferenceAudit.from_pretrained(tmp_path, encoder=other_hook)


def test_the_interventions_refuse_rows_other_than_the_audited_ones(encoded, pairs):
    k = int(encoded.statistics_.iloc[0]["concept"])
    with pytest.raises(
        RowMismatchError, match=r"of the dataset.s 12 rows differ from the audited pairs \(first: row \d+\)"
    ):
        filter_pairs(pairs.shuffle(seed=1), encoded, [k], threshold=0.5)
    edited = pairs.map(lambda row, i: {"chosen": row["chosen"] + "!" if i == 5 else row["chosen"]}, with_indices=True)
    with pytest.raises(RowMismatchError, match=r"1 of the dataset's 12 rows differ .*first: row 5"):
        add_concept_margin(edited, encoded, [k])
    with pytest.raises(RowMismatchError, match="has 6 rows but the audit saw 12 pairs"):
        add_pair_weights(pairs.select(range(6)), encoded, [k])
    # without the pair columns only the length can be checked, and a warning says so
    with pytest.warns(UserWarning, match=r"lacks \['chosen', 'rejected'\], so only its length \(12 rows\)"):
        assert len(add_concept_margin(pairs.select_columns(["prompt"]), encoded, [k])) == 12


@pytest.mark.parametrize(
    "call",
    [
        lambda audit, ds: add_concept_margin(ds, audit, [0]),
        lambda audit, ds: add_pair_weights(ds, audit, [0]),
        lambda audit, ds: filter_pairs(ds, audit, [0]),
        lambda audit, ds: concept_margin(audit, [0]),
        lambda audit, ds: pair_weights(audit),
        lambda audit, ds: audit.report(),
        lambda audit, ds: audit.flagged(),
        lambda audit, ds: audit.disparity(0),
        lambda audit, ds: audit.save_pretrained("/tmp/hf-saerl-never-written"),
    ],
)
def test_an_unfitted_audit_is_a_not_fitted_error(call):
    ds = Dataset.from_dict({"row": [0, 1]})
    with pytest.raises(
        NotFittedError,
        match=r"This PreferenceAudit is not fitted yet, so \S+ cannot run. Call "
        r"fit\(dataset\) or fit_features\(...\) first, or load a fitted one",
    ):
        call(PreferenceAudit(), ds)


def test_a_failed_fit_leaves_no_state(fitted):
    audit = PreferenceAudit(n_regions=1)
    with pytest.raises(NonFiniteError, match="chosen_max holds NaN"):
        audit.fit_features(sp.csr_matrix([[np.nan, 1.0]]), [[1.0, 1.0]], [[1.0, 1.0]], [[1.0, 1.0]])
    with pytest.raises(InvalidParameterError, match="No latent fires on at least min_support=3 responses"):
        audit.fit_features(*(sp.csr_matrix(np.eye(2)),) * 4)
    assert not [k for k in vars(audit) if k.endswith("_")]
    with pytest.raises(NotFittedError):
        audit.report()
    with pytest.raises(InvalidParameterError, match=r"latent must be an SAE latent id in \[0, 24\); got -1"):
        fitted.concept_of(-1)
    with pytest.raises(InvalidParameterError, match=r"Concept ids must be in \[0, "):
        fitted.concept_scores([10_000])
    with pytest.raises(InvalidParameterError, match="side must be 'chosen' or 'rejected'; got 'both'"):
        fitted.concept_scores(0, side="both")


def test_load_overrides(fitted, tmp_path):
    fitted.save_pretrained(tmp_path)
    loaded = PreferenceAudit.from_pretrained(tmp_path, chosen_column="good", batch_size=4)
    assert (loaded.chosen_column, loaded.batch_size) == ("good", 4)
    with pytest.raises(InvalidParameterError, match=r"\['z_threshold'\] decided the saved audit's statistics"):
        PreferenceAudit.from_pretrained(tmp_path, z_threshold=1.0)
    with pytest.raises(InvalidParameterError, match=r"Unknown parameter\(s\) \['colour'\]"):
        PreferenceAudit.from_pretrained(tmp_path, colour="red")
    assert PreferenceAudit.from_pretrained(tmp_path, z_threshold=3.0).z_threshold == 3.0  # the saved value is fine


def _edit_arrays(directory, **changes):
    edit_arrays(directory / "audit.safetensors", **changes)


def _bump(a):
    a = a.copy()
    a[-1] += 1000
    return a


@pytest.mark.parametrize(
    "damage, error, match",
    [
        (
            lambda d: edit_json(d / "audit.json", format_version=2, hf_saerl_version="9.0"),
            BundleError,
            r"written in format version 2 by hf_saerl 9.0; this hf_saerl .* reads format versions up to 1. Upgrade",
        ),
        (
            lambda d: edit_json(d / "audit.json", audit="QualityProbe"),
            BundleError,
            r"does not hold a saved PreferenceAudit",
        ),
        (
            lambda d: edit_json(d / "audit.json", n_pairs="many"),
            BundleError,
            r"'n_pairs' should be a int, found 'many'",
        ),
        (lambda d: (d / "audit.json").write_text("{oops"), BundleError, r"Could not parse .*audit.json"),
        (lambda d: (d / "config.json").write_text("[]"), BundleError, r"config.json .*should hold a JSON object"),
        (
            lambda d: (d / "audit.safetensors").write_bytes(b"\x00" * 64),
            BundleError,
            r"Could not read .*corrupt or truncated",
        ),
        (lambda d: _edit_arrays(d, **{"chosen_max.indices": _bump}), BundleError, r"'chosen_max' matrix is malformed"),
        (lambda d: _edit_arrays(d, **{"disparity.indptr": None}), BundleError, r"has no array 'disparity.indptr'"),
        (lambda d: _edit_arrays(d, regions=lambda a: a + 5), BundleError, r"region ids outside \[0, 2\)"),
        (lambda d: _edit_arrays(d, **{"concepts.latents": _bump}), BundleError, r"latent ids or offsets are malformed"),
        (
            lambda d: _edit_arrays(d, **{"statistics.delta": lambda a: a[:-1]}),
            BundleError,
            r"Array 'statistics.delta' in .* has shape",
        ),
        (lambda d: (d / "texts.json").unlink(), FileNotFoundError, r"texts.json is missing"),
        (lambda d: edit_json(d / "texts.json", chosen=["only one"]), BundleError, r"the 'chosen' texts should be 120"),
    ],
)
def test_damaged_saves_are_refused(fitted, tmp_path, damage, error, match):
    fitted.save_pretrained(tmp_path)
    damage(tmp_path)
    with pytest.raises(error, match=match):
        PreferenceAudit.from_pretrained(tmp_path)


def test_push_to_hub_and_load_by_repo_id(fitted, tmp_path, monkeypatch):
    import huggingface_hub.hub_mixin

    hub = tmp_path / "hub"

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            return type("RepoUrl", (), {"repo_id": repo_id})()

        def upload_folder(self, *, repo_id, folder_path, **kwargs):
            shutil.copytree(folder_path, hub / repo_id, dirs_exist_ok=True)
            return f"https://huggingface.co/{repo_id}/commit/0"

    def fake_download(repo_id, filename, *, subfolder=None, **kwargs):
        path = hub / repo_id / (subfolder or "") / filename
        assert path.exists(), path
        return str(path)

    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", FakeApi)
    monkeypatch.setattr(files_module, "hf_hub_download", fake_download)
    fitted.push_to_hub("someone/audit")
    assert {p.name for p in (hub / "someone/audit").iterdir()} >= {"audit.json", "audit.safetensors", "README.md"}
    loaded = PreferenceAudit.from_pretrained("someone/audit", revision="main")
    _same(fitted, loaded)
    assert loaded.report().to_markdown() == fitted.report().to_markdown()
    with pytest.raises(FileNotFoundError, match=r"Directory '/nowhere/audit' does not exist"):
        PreferenceAudit.from_pretrained(Path("/nowhere/audit"))
