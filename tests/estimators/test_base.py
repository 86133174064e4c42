"""The shared estimator machinery (estimators.base, inputs, saving): bad inputs and faults, one test each (issue 13,
"nothing silent"), and the SAE identity check (another SAE refused or warned about; unverifiable ones warned once).

Each case asserts the error class and that the message names the problem; where a dataset is involved, also
that it was not changed.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from datasets import Dataset
from sklearn.exceptions import NotFittedError

from hf_saerl import DifficultyProbe, QualityProbe, SAEClusterer
from hf_saerl.errors import (
    BundleError,
    HookMismatchError,
    InvalidParameterError,
    NonFiniteError,
    WidthMismatchError,
)
from hf_saerl.estimators.base import UnverifiedSAEWarning
from hf_saerl.testing import edit_arrays  # saved without a checksum: the finiteness / dtype checks must catch it

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
def test_infinite_labels_name_the_column_and_rows():
    y = np.where(np.arange(60) % 2 == 0, INF, 0.5)
    with pytest.raises(NonFiniteError, match=r"label\(s\) in 'y' are infinite \(rows \[0, 2"):
        DifficultyProbe(d_sae=10, cv=None).fit(features(), y)


def test_infinite_labels_in_a_dataset_column_name_the_column():
    X = features(20)
    ds = Dataset.from_dict(
        {
            "sae_indices": [list(map(int, r.indices)) for r in X],
            "sae_values": [list(map(float, r.data)) for r in X],
            "score": [INF] + [float(i) for i in range(19)],
        }
    )
    with pytest.raises(NonFiniteError, match="'score'"):
        QualityProbe(d_sae=10, cv=None, task="regression").fit(ds, label_column="score")


def test_nan_features_at_fit_are_refused():
    X = features()
    X.data[0] = np.nan
    with pytest.raises(NonFiniteError, match="SAE features hold 1 NaN or infinite"):
        QualityProbe(d_sae=10, cv=None).fit(X, np.arange(60) % 2 == 0)


def test_infinite_features_at_predict_are_refused(probe):
    X = features()
    X.data[3] = np.inf
    with pytest.raises(NonFiniteError, match="SAE features hold 1 NaN or infinite"):
        probe.predict_quality(X)


def test_nan_regularisation_is_refused():
    with pytest.raises(NonFiniteError, match="C must be a finite number, got nan"):
        QualityProbe(d_sae=10, C=NAN, cv=None).fit(features(), np.arange(60) % 2 == 0)
    with pytest.raises(InvalidParameterError, match=r"C must be in \(0, inf\), got 0.0. Pass a positive, finite C"):
        QualityProbe(d_sae=10, C=0.0, cv=None).fit(features(), np.arange(60) % 2 == 0)


def test_saved_nan_coefficient_is_refused(probe, tmp_path):
    probe.save_pretrained(tmp_path)
    edit_arrays(tmp_path / "quality_probe.safetensors", coef=lambda a: np.where(np.arange(a.size) == 0, np.nan, a))
    with pytest.raises(NonFiniteError, match=r"Array 'coef' in .*quality_probe.safetensors holds 1 NaN"):
        QualityProbe.from_pretrained(tmp_path)


def test_saved_infinite_intercept_is_refused(probe, tmp_path):
    probe.save_pretrained(tmp_path)
    edit_arrays(tmp_path / "quality_probe.safetensors", intercept=lambda a: a * np.inf)
    with pytest.raises(NonFiniteError, match="Array 'intercept'"):
        QualityProbe.from_pretrained(tmp_path)


def test_saved_nan_centroid_is_refused(tmp_path):
    SAEClusterer(d_sae=10, n_clusters=3).fit(features()).save_pretrained(tmp_path)
    edit_arrays(tmp_path / "clusters.safetensors", cluster_centers=lambda a: np.where(a == a.max(), np.nan, a))
    with pytest.raises(NonFiniteError, match=r"Array 'cluster_centers' in .*clusters.safetensors"):
        SAEClusterer.from_pretrained(tmp_path)


def test_saved_arrays_of_another_dtype_are_refused(probe, tmp_path):
    probe.save_pretrained(tmp_path)
    edit_arrays(tmp_path / "quality_probe.safetensors", coef=lambda a: a.astype(np.float16))
    with pytest.raises(BundleError, match="has dtype float16, expected float64"):
        QualityProbe.from_pretrained(tmp_path)


def test_flipped_weight_bytes_are_refused_by_the_checksum(probe, tmp_path):
    probe.save_pretrained(tmp_path)
    path = tmp_path / "quality_probe.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01  # the low bits of the intercept: still a finite float, silently different without a checksum
    path.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="do not match the sha256 checksum"):
        QualityProbe.from_pretrained(tmp_path)


def test_edited_state_json_is_refused_by_its_checksum(probe, tmp_path):
    probe.save_pretrained(tmp_path)
    path = tmp_path / "quality_probe.json"
    state = json.loads(path.read_text())
    state["fitted"]["classes_"] = [True, False]  # swap good and bad: valid JSON, inverted scores
    path.write_text(json.dumps(state))
    with pytest.raises(BundleError, match="was changed after it was saved"):
        QualityProbe.from_pretrained(tmp_path)


def test_deliberate_edit_without_checksum_loads_with_a_warning(probe, tmp_path, caplog):
    """Not an error: deleting the checksum is the documented way to accept a hand edit; it is logged."""
    probe.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    config = json.loads(path.read_text())
    del config["checksum"]
    config["output_column"] = "q"
    path.write_text(json.dumps(config))
    assert QualityProbe.from_pretrained(tmp_path).output_column == "q"
    assert "records no 'checksum'" in caplog.text


# ---------------------------------------------------------------------------------- widths (family 4)
def test_features_of_another_width_are_refused(probe):
    with pytest.raises(WidthMismatchError, match="10"):
        probe.predict_quality(features(d=12))


def test_width_override_at_load_is_refused(probe, tmp_path):
    probe.save_pretrained(tmp_path)
    with pytest.raises(WidthMismatchError, match=r"d_sae=10.*d_sae=12 was requested"):
        QualityProbe.from_pretrained(tmp_path, d_sae=12)


# ---------------------------------------------------------------------------------- unfitted use (family 8)
@pytest.mark.parametrize(
    "make, method",
    [
        (lambda: QualityProbe(d_sae=10), "predict_quality"),
        (lambda: DifficultyProbe(d_sae=10), "predict_difficulty"),
        (lambda: SAEClusterer(d_sae=10), "predict"),
    ],
)
def test_unfitted_prediction_names_the_method_and_fit(make, method):
    with pytest.raises(NotFittedError, match=rf"so {method} cannot run. Call fit"):
        getattr(make(), method)(features())


def test_unfitted_filter_names_fit(scored):
    ds = Dataset.from_dict({"sae_indices": [[0]], "sae_values": [[1.0]]})
    with pytest.raises(NotFittedError, match=r"not fitted yet.*Call fit"):
        QualityProbe(d_sae=10).filter(ds, threshold=0.5)


def test_unfitted_save_writes_nothing(tmp_path):
    with pytest.raises(NotFittedError, match="so save_pretrained cannot run"):
        QualityProbe(d_sae=10).save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ---------------------------------------------------------------------------------- another SAE (family 4)
@pytest.fixture(scope="module")
def two_encodings(model, tokenizer):
    from hf_saerl import SAEEncoder
    from hf_saerl.testing import tiny_sae

    texts = {"text": [f"Problem {i}: add {i} and {i + 1}" if i % 2 else f"noise ~~ {i}" for i in range(24)]}
    out = {}
    for name, hook, seed in (
        ("a", "blocks.1.hook_resid_post", 0),
        ("b", "blocks.0.hook_resid_post", 1),
        ("c", "blocks.1.hook_resid_post", 2),
    ):
        sae = tiny_sae(d_in=32, d_sae=128, hook_name=hook, seed=seed)
        out[name] = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=8).map(Dataset.from_dict(texts))
        out[name] = out[name].add_column("good", [bool(i % 2) for i in range(24)])
    return out


def test_probe_refuses_features_of_an_sae_at_another_hook(two_encodings):
    probe = QualityProbe(d_sae=128, cv=None).fit(two_encodings["a"], label_column="good")
    with pytest.raises(HookMismatchError, match=r"fitted on SAE features read at hook_name='blocks.1.hook_resid_post'"):
        probe.filter(two_encodings["b"], threshold=0.5)


def test_saved_probe_remembers_its_sae(two_encodings, tmp_path):
    QualityProbe(d_sae=128, cv=None).fit(two_encodings["a"], label_column="good").save_pretrained(tmp_path)
    with pytest.raises(HookMismatchError, match=r"blocks.0.hook_resid_post"):
        QualityProbe.from_pretrained(tmp_path).filter(two_encodings["b"], threshold=0.5)


def test_another_sae_at_the_same_hook_is_warned_about(two_encodings, caplog):
    """Not refused: the column record cannot tell another SAE from another top_k or model revision (same hook and
    width), so this is a logged warning, not an error."""
    probe = QualityProbe(d_sae=128, cv=None).fit(two_encodings["a"], label_column="good")
    probe.filter(two_encodings["c"], threshold=0.5)
    assert "were made by encoder" in caplog.text


def test_map_batches_carry_the_sae_record(two_encodings):
    """Dataset.map hands the estimator a batch whose schema holds the encoder's record: the check runs there too."""
    probe = QualityProbe(d_sae=128, cv=None).fit(two_encodings["a"], label_column="good")
    with pytest.raises(HookMismatchError, match=r"blocks.0.hook_resid_post"):
        two_encodings["b"].map(probe, batched=True)
    with pytest.raises(HookMismatchError, match=r"blocks.0.hook_resid_post"):
        two_encodings["b"].with_format("arrow").map(probe, batched=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedSAEWarning)
        assert len(two_encodings["a"].map(probe, batched=True)["quality"]) == 24  # the same SAE: silent


def _without_record(ds):
    """The same columns as another tool would write them: no SAE record in the schema."""
    return Dataset.from_dict({c: ds[c] for c in ("sae_indices", "sae_values")})


def test_columns_without_a_record_are_warned_about_once(two_encodings):
    probe = QualityProbe(d_sae=128, cv=None).fit(two_encodings["a"], label_column="good")
    plain = _without_record(two_encodings["c"])  # another SAE at the same hook, its record lost
    with pytest.warns(UnverifiedSAEWarning) as caught:
        plain.map(probe, batched=True, batch_size=5)  # 5 batches
        probe.predict_quality(plain)
        plain.with_format("arrow").map(probe, batched=True)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "QualityProbe: the data's 'sae_indices' column carries no SAE record" in message
    assert "hook_name 'blocks.1.hook_resid_post'" in message and "UnverifiedSAEWarning" in message
    other = QualityProbe(d_sae=128, cv=None).fit(two_encodings["a"], label_column="good")
    with pytest.warns(UnverifiedSAEWarning):  # once per estimator: a new one warns again
        other.predict_quality(plain)


def test_an_estimator_without_a_record_warns_once_on_recorded_columns(two_encodings):
    X = sp.random(30, 128, density=0.1, format="csr", random_state=0)
    probe = QualityProbe(d_sae=128, cv=None).fit(X, np.arange(30) % 2 == 0)
    assert probe.sae_identity_ is None
    with pytest.warns(UnverifiedSAEWarning, match="this QualityProbe records no SAE") as caught:
        two_encodings["a"].map(probe, batched=True, batch_size=5)
        two_encodings["b"].map(probe, batched=True)
    assert len(caught) == 1 and "blocks.1.hook_resid_post" in str(caught[0].message)
    with warnings.catch_warnings():  # a matrix or plain lists on both sides: nothing recorded, nothing to say
        warnings.simplefilter("error", UnverifiedSAEWarning)
        fresh = QualityProbe(d_sae=128, cv=None).fit(X, np.arange(30) % 2 == 0)
        fresh.predict_quality(X)
        _without_record(two_encodings["a"]).map(fresh, batched=True)
