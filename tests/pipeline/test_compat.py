"""Bundles written before the stage moves (hf_saerl 0.1.0 at commit 14157d6) still load and give the same columns.

``tests/fixtures/bundles_0_1_0`` was written by that commit's code: a fitted pipeline (quality, difficulty,
clusters, its SAE) over the tiny test model, a quality probe saved alone, and the pipeline's outputs on
``test_pipeline.labelled()`` (``expected.npz``). The model itself is rebuilt in code (``tiny_llama`` is seeded).
"""

from pathlib import Path

import numpy as np
import pytest

from hf_saerl import QualityProbe, SAERLPipeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles_0_1_0"


@pytest.fixture(scope="module")
def labelled_data():
    """The rows the bundle was fitted and scored on: ``labelled()`` of the pipeline tests."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pipeline_tests", Path(__file__).with_name("test_pipeline.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.labelled()


def test_a_pipeline_saved_by_0_1_0_loads_and_scores_the_same(model, tokenizer, labelled_data):
    pipeline = SAERLPipeline.from_pretrained(FIXTURES / "pipeline", model=model, tokenizer=tokenizer)
    out = pipeline(labelled_data)
    expected = np.load(FIXTURES / "expected.npz")
    for column in ("quality", "difficulty", "cluster_id"):
        np.testing.assert_array_equal(np.asarray(out[column]), expected[column], err_msg=column)


def test_the_encoder_of_a_0_1_0_bundle_keeps_its_flat_options(model, tokenizer):
    """The bundle records the encoder's options flat (``indices_column``, ``on_empty``, ...), as written before they
    were grouped into ``columns=FeatureColumns`` and ``tokens=TokenPolicy``: they land in the groups, and the loaded
    encoder's ``config()`` gives back every one of them unchanged (so a re-save writes the same options)."""
    import json

    from hf_saerl import FeatureColumns, TokenPolicy

    saved = json.loads((FIXTURES / "pipeline" / "config.json").read_text())["encoder"]
    encoder = SAERLPipeline.from_pretrained(FIXTURES / "pipeline", model=model, tokenizer=tokenizer).encoder
    assert encoder.columns == FeatureColumns()
    assert encoder.tokens == TokenPolicy(pool_start=0)
    assert encoder.top_k == 16
    assert {k: v for k, v in encoder.config().items() if k in saved} == saved


def test_a_probe_saved_by_0_1_0_loads_with_its_fitted_state():
    probe = QualityProbe.from_pretrained(FIXTURES / "quality_probe")
    pipeline_probe = QualityProbe.from_pretrained(FIXTURES / "pipeline" / "quality")
    assert probe.d_sae == 128 and probe.task_ == "classification"
    np.testing.assert_array_equal(probe.coef_, pipeline_probe.coef_)
