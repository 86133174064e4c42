"""Saved estimators and pipeline bundles refuse bad files and values, plus a hypothesis fuzzer of the loaders.

The catalogue: one test per bad file or value, asserting the error class and that the message names the file or
value. The fuzzer mutates one file of a saved bundle (a byte flip, a truncation, a dtype or shape change of a
safetensors array, a changed JSON value) and requires that the bundle is either refused or loads and predicts
exactly like the original: never loaded into different results. Its counts are written to the JSON file named by
``HF_SAERL_FUZZ_REPORT`` (when set) and printed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save_file
from sklearn.exceptions import NotFittedError

from hf_saerl import DifficultyProbe, QualityProbe, SAEClusterer, SAEEncoder
from hf_saerl.errors import BundleError, HfSaerlError, InvalidParameterError, NonFiniteError
from hf_saerl.pipeline import SAERLPipeline

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
NAN = float("nan")
D = 12


def matrix(n=50, seed=0):
    X = sp.random(n, D, density=0.5, random_state=seed, format="csr", dtype=np.float32)
    X.data += 1.0
    return X


def labelled(n=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = {"text": [], "good": [], "pass_rate": []}
    for i in range(n):
        numbers = " ".join(str(x) for x in rng.integers(0, 99, size=2 + i % 5))
        rows["text"].append(("Solve for x: " if i % 2 else "note ~~ ") + numbers)
        rows["good"].append(bool(i % 2))
        rows["pass_rate"].append(float((i % 5) / 4))
    return Dataset.from_dict(rows)


@pytest.fixture(scope="module")
def data():
    return labelled()


@pytest.fixture(scope="module")
def pipeline(model_dir, sae_dir, data):
    enc = SAEEncoder(str(model_dir), str(sae_dir), top_k=8)
    d = enc.d_sae
    pipe = SAERLPipeline(
        enc,
        quality=QualityProbe(d_sae=d, cv=None),
        difficulty=DifficultyProbe(d_sae=d, alpha=0.01, l1_ratio=0.5, cv=None),
        clusterer=SAEClusterer(d_sae=d, n_clusters=3),
        quality_threshold=0.3,
    )
    return pipe.fit(data, quality_label="good", difficulty_label="pass_rate")


@pytest.fixture(scope="module")
def bundle(pipeline, tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "pipe"
    pipeline.save_pretrained(path)
    return path


@pytest.fixture
def copy(bundle, tmp_path):
    return Path(shutil.copytree(bundle, tmp_path / "copy"))


def edit_json(path, drop_checksum=True, **changes):
    """A deliberate edit: the value changes and the checksum is dropped (the documented way to accept an edit)."""
    config = json.loads(path.read_text())
    config.update(changes)
    if drop_checksum:
        config.pop("checksum", None)
    path.write_text(json.dumps(config))


# ---------------------------------------------------------------------------------- non-finite / range (family 1)
def test_pipeline_nan_threshold_is_refused_at_first_use(pipeline, data):
    with pytest.raises(NonFiniteError, match="quality_threshold must be a finite number, got nan"):
        SAERLPipeline(quality=pipeline.quality, quality_threshold=NAN)(data)


def test_pipeline_threshold_above_one_is_refused(pipeline, data):
    with pytest.raises(InvalidParameterError, match=r"quality_threshold=1.5 is outside \[0, 1\]"):
        SAERLPipeline(quality=pipeline.quality, quality_threshold=1.5)(data)


def test_pipeline_threshold_set_later_is_refused_before_any_work(pipeline, data):
    pipe = SAERLPipeline(pipeline.encoder, quality=pipeline.quality)
    pipe.quality_threshold = NAN
    before = data.to_dict()
    with pytest.raises(NonFiniteError, match="quality_threshold must be a finite number"):
        pipe(data)
    assert data.to_dict() == before


def test_nan_threshold_in_config_json_is_refused(copy):
    path = copy / "config.json"
    path.write_text(path.read_text().replace('"quality_threshold": 0.3', '"quality_threshold": NaN'))
    with pytest.raises(BundleError, match=r"config.json.*NaN"):
        SAERLPipeline.from_pretrained(copy)


def test_string_threshold_in_config_json_is_refused(copy):
    edit_json(copy / "config.json", quality_threshold="0.3")
    with pytest.raises(BundleError, match=r"config.json has quality_threshold='0.3', not a number"):
        SAERLPipeline.from_pretrained(copy)


def test_out_of_range_threshold_in_config_json_is_refused(copy):
    edit_json(copy / "config.json", quality_threshold=7.0)
    with pytest.raises(InvalidParameterError, match=r"config.json.*quality_threshold=7.0 is outside \[0, 1\]"):
        SAERLPipeline.from_pretrained(copy)


def test_nan_coefficient_in_a_bundle_is_refused(copy):
    path = copy / "quality" / "quality_probe.safetensors"
    with safe_open(str(path), framework="numpy") as f:
        arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has keys() but is not iterable
    arrays["coef"][0] = np.nan
    save_file(arrays, str(path))
    with pytest.raises(NonFiniteError, match=r"Array 'coef' in .*quality_probe.safetensors holds 1 NaN"):
        SAERLPipeline.from_pretrained(copy)


# ---------------------------------------------------------------------------------- paths (family 2)
@pytest.mark.parametrize("where", ["../elsewhere", "/tmp/elsewhere"])
def test_sae_path_outside_the_bundle_is_refused(copy, where):
    config = json.loads((copy / "config.json").read_text())
    config["sae"]["path"] = where
    edit_json(copy / "config.json", sae=config["sae"])
    with pytest.raises(BundleError, match=rf"points the SAE at '{where}', outside the pipeline's folder"):
        SAERLPipeline.from_pretrained(copy)


def test_listed_file_outside_the_bundle_is_refused(copy):
    edit_json(copy / "config.json", files={"../../etc/passwd": "0" * 64})
    with pytest.raises(BundleError, match=r"points a file \('../../etc/passwd'\) at .*outside"):
        SAERLPipeline.from_pretrained(copy)


def test_sae_path_through_a_symlink_out_is_refused(copy, sae_dir):
    shutil.rmtree(copy / "sae")
    os.symlink(sae_dir, copy / "sae")
    with pytest.raises(BundleError, match="outside the pipeline's folder"):
        SAERLPipeline.from_pretrained(copy)


# ---------------------------------------------------------------------------------- integrity (fuzzer finds)
def test_replaced_sae_weights_are_refused_by_their_digest(copy):
    path = copy / "sae" / "sae_weights.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=r"sae_weights.safetensors does not match the SHA-256"):
        SAERLPipeline.from_pretrained(copy)


def test_edited_config_value_is_refused_by_its_checksum(copy):
    edit_json(copy / "config.json", drop_checksum=False, quality_threshold=0.9)
    with pytest.raises(BundleError, match=r"config\.json was changed after it was saved"):
        SAERLPipeline.from_pretrained(copy)


def test_deliberate_config_edit_is_accepted_without_the_checksum(copy, caplog):
    """Not an error: an edit with the checksum removed is a decision, and it is logged."""
    edit_json(copy / "config.json", quality_threshold=0.9)
    assert SAERLPipeline.from_pretrained(copy).quality_threshold == 0.9
    assert "records no 'checksum'" in caplog.text


def test_missing_sae_file_is_a_file_not_found(copy):
    (copy / "sae" / "cfg.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"SAE is incomplete: \['.*sae/cfg.json'\] missing"):
        SAERLPipeline.from_pretrained(copy)


# ---------------------------------------------------------------------------------- unfitted (family 8)
def test_unfitted_pipeline_names_fit(pipeline, data):
    pipe = SAERLPipeline(pipeline.encoder, quality=QualityProbe(d_sae=pipeline.d_sae))
    with pytest.raises(NotFittedError, match=r"quality \(QualityProbe\) is not fitted.*pipeline.fit"):
        pipe(data)


def test_unfitted_pipeline_save_writes_nothing(pipeline, tmp_path):
    pipe = SAERLPipeline(pipeline.encoder, quality=QualityProbe(d_sae=pipeline.d_sae))
    with pytest.raises(NotFittedError, match="save_pretrained"):
        pipe.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ====================================================================================== the fuzzer
def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@st.composite
def mutations(draw, files: list[str]):
    name = draw(st.sampled_from(files))
    kinds = (
        ["flip", "truncate"]
        + (["dtype", "shape"] if name.endswith(".safetensors") else [])
        + (["json"] if name.endswith(".json") else [])
    )
    kind = draw(st.sampled_from(kinds))
    return name, kind, draw(st.integers(0, 2**31)), draw(st.integers(1, 255))


def mutate(folder: Path, name: str, kind: str, where: int, byte: int) -> None:
    path = folder / name
    raw = bytearray(path.read_bytes())
    if kind == "flip":
        raw[where % len(raw)] ^= byte
        path.write_bytes(bytes(raw))
    elif kind == "truncate":
        path.write_bytes(bytes(raw[: where % len(raw)]))
    elif kind in ("dtype", "shape"):
        with safe_open(str(path), framework="numpy") as f:
            metadata, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has keys() but is not iterable
        key = sorted(arrays)[where % len(arrays)]
        arr = arrays[key]
        if kind == "dtype":
            targets = [t for t in (np.float16, np.float32, np.float64, np.int64) if t != arr.dtype]
            arrays[key] = arr.astype(targets[byte % len(targets)])
        else:
            arrays[key] = (
                arr.reshape(-1)[:-1]
                if arr.size > 1 and byte % 2
                else np.concatenate([arr.reshape(-1), arr.reshape(-1)[:1]])
            )
        save_file(arrays, str(path), metadata=metadata)
    else:  # a changed JSON value, written back as valid JSON (the checksum is kept)
        obj = json.loads(raw)
        leaves = []

        def walk(node, parent=None, key=None):
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(v, node, k)
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, node, i)
            elif parent is not None:
                leaves.append((parent, key))

        walk(obj)
        parent, key = leaves[where % len(leaves)]
        value = parent[key]
        if isinstance(value, bool) or value is None:
            parent[key] = not value
        elif isinstance(value, (int, float)):
            parent[key] = value + (byte - 128) / 64 or 1
        else:
            parent[key] = str(value)[:-1] + chr(33 + byte % 90)
        path.write_text(json.dumps(obj))


def outcome(load, predict, original) -> str:
    try:
        result = predict(load())
    except (HfSaerlError, FileNotFoundError, NotFittedError):
        return "refused"
    return "identical" if _same(result, original) else "different"


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def report(name: str, counts: Counter) -> None:
    line = {
        "fuzzer": name,
        "tried": sum(counts.values()),
        **{k: counts.get(k, 0) for k in ("refused", "identical", "different")},
    }
    print(json.dumps(line))
    target = os.environ.get("HF_SAERL_FUZZ_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def _estimator_folder(tmp_path_factory):
    X = matrix()
    est = QualityProbe(d_sae=D, cv=None, transform=("log1p", "std")).fit(X, np.arange(50) % 3 == 0)
    folder = tmp_path_factory.mktemp("probe")
    est.save_pretrained(folder)
    return folder, X


def _predict_estimator(est, X):
    batch = {"sae_indices": [list(map(int, r.indices)) for r in X], "sae_values": [list(map(float, r.data)) for r in X]}
    return {"quality": est.predict_quality(X), "columns": est(batch), "d_sae": est.d_sae}


def run_fuzz(name: str, folder, load, predict, tmp_path_factory, n_examples: int) -> Counter:
    """Load every mutated copy of the saved ``folder``: each must be refused, or predict as the original does."""
    original = predict(load(folder))
    counts: Counter = Counter()
    work = tmp_path_factory.mktemp(f"fuzz-{name}")

    @settings(
        max_examples=n_examples, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(mutations(_files(folder)))
    def check(m):
        target = work / "m"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target)
        mutate(target, *m)
        result = outcome(lambda: load(target), predict, original)
        counts[result] += 1
        assert result != "different", f"mutation {m} loaded into different results"

    check()
    report(name, counts)
    return counts


def run_estimator_fuzz(tmp_path_factory, n_examples: int) -> Counter:
    folder, X = _estimator_folder(tmp_path_factory)
    return run_fuzz(
        "estimator",
        folder,
        QualityProbe.from_pretrained,
        lambda e: _predict_estimator(e, X),
        tmp_path_factory,
        n_examples,
    )


def _predict_pipeline(pipe, data):
    return pipe(data).to_dict()


def run_pipeline_fuzz(bundle, data, model_dir, tmp_path_factory, n_examples: int) -> Counter:
    from hf_saerl.testing import tiny_tokenizer  # noqa: F401  (the tokenizer is read from model_dir)

    sample = data.select(range(8))
    return run_fuzz(
        "pipeline",
        bundle,
        SAERLPipeline.from_pretrained,
        lambda p: _predict_pipeline(p, sample),
        tmp_path_factory,
        n_examples,
    )


def test_fuzz_saved_estimator(tmp_path_factory):
    counts = run_estimator_fuzz(tmp_path_factory, 300)
    assert counts["different"] == 0 and counts["refused"] > 0


def test_fuzz_pipeline_bundle(bundle, data, model_dir, tmp_path_factory):
    counts = run_pipeline_fuzz(bundle, data, model_dir, tmp_path_factory, 120)
    assert counts["different"] == 0 and counts["refused"] > 0


@pytest.mark.slow
def test_fuzz_saved_estimator_many(tmp_path_factory):
    assert run_estimator_fuzz(tmp_path_factory, 3000)["different"] == 0


@pytest.mark.slow
def test_fuzz_pipeline_bundle_many(bundle, data, model_dir, tmp_path_factory):
    assert run_pipeline_fuzz(bundle, data, model_dir, tmp_path_factory, 600)["different"] == 0
