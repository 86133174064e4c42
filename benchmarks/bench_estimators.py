"""Benchmark: fit and predict time of the estimators and the pipeline on realistic sparse SAE features.

Synthetic top-k codes built to look like real ones: ``--d-sae`` latents (16,384), the ``--top-k`` (64)
strongest per row, a Zipf-like latent popularity (a few latents fire in most rows, most in few), log-normal
activations, token counts. Labels are planted in 40 latents (a quality class and a pass rate).

Each arm has a **baseline** measured back to back in the same process, on the same matrix:

* ``quality fit``: ``QualityProbe(cv=None).fit(X)`` vs scikit-learn's ``LogisticRegression`` on ``log1p(X)``
  directly (the wrapper's overhead); ``quality fit cv=5`` is the default fit (out-of-fold AUROC: 6 fits),
  against the same single sklearn fit.
* ``difficulty fit``: ``DifficultyProbe(label="pass_rate")`` with its defaults vs one scikit-learn
  ``ElasticNet`` at the alpha and l1_ratio the probe chose (the cost of the search). Run at ``--difficulty-rows``
  rows (the labelled subset; the first m rows): the search is the slow part (``bench_difficulty_fit.py`` studies it).
* ``clusterer fit k=16``: ``SAEClusterer(n_clusters=16)`` (``--n-clusters``) vs scikit-learn's (MiniBatch)KMeans on the same
  l2-normalised ``log1p`` rows; ``clusterer fit auto``: ``n_clusters="auto"`` vs the fixed-k fit.
* ``* predict``: ``Dataset.map(estimator, batched=True)`` over a ``datasets.Dataset`` holding the SAE columns
  vs the same model's scikit-learn/numpy predict on the ready CSR matrix (the cost of reading Arrow columns).
* ``pipeline __call__``: ``SAERLPipeline(quality, difficulty, clusterer)(dataset)`` vs the three
  ``dataset.map`` calls written by hand.

    python benchmarks/bench_estimators.py                                  # 10k / 100k / 1M rows
    python benchmarks/bench_estimators.py --rows 2000 --difficulty-rows 2000 --d-sae 1024 --top-k 16  # smallest

Prints seconds of baseline and ours, the ratio baseline / ours, rows/s and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from benchutil import header, max_rss_mb, print_table, ratio, timed, times, write_json

N_SIGNAL = 40


def codes(n_rows: int, d_sae: int, top_k: int, seed: int = 0, chunk: int = 50_000):
    """``(X, quality_label, pass_rate, n_tokens)``: an ``(n_rows, d_sae)`` float32 CSR of top-k codes (indices
    sorted), built in chunks with numpy only (about 1 s per million rows)."""
    import scipy.sparse as sp

    layout = np.random.default_rng(1234)
    popularity = 1.0 / (np.arange(d_sae, dtype=np.float64) + 5.0)
    cdf = np.cumsum(popularity / popularity.sum())
    latent_of_rank = layout.permutation(d_sae).astype(np.int32)
    signal = latent_of_rank[layout.choice(np.arange(5, min(600, d_sae)), N_SIGNAL, replace=False)]
    weights = layout.normal(0.0, 1.0, N_SIGNAL)
    rng = np.random.default_rng(seed)
    indptr, indices = [np.zeros(1, np.int64)], []
    for start in range(0, n_rows, chunk):
        m = min(chunk, n_rows - start)
        draws = np.searchsorted(cdf, rng.random((m, 3 * top_k)))
        draws = latent_of_rank[np.minimum(draws, d_sae - 1)]
        draws.sort(axis=1)
        fresh = np.ones_like(draws, dtype=bool)
        fresh[:, 1:] = draws[:, 1:] != draws[:, :-1]
        keep = fresh & (np.cumsum(fresh, axis=1) <= top_k)  # the first top_k distinct latents (in id order)
        indices.append(draws[keep])
        indptr.append(indptr[-1][-1] + np.cumsum(keep.sum(1)))
    indices = np.concatenate(indices).astype(np.int32)
    values = rng.lognormal(0.0, 0.8, size=len(indices)).astype(np.float32)
    X = sp.csr_matrix((values, indices, np.concatenate(indptr)), shape=(n_rows, d_sae))
    z = np.log1p(X[:, signal].toarray()) @ weights
    z = (z - z.mean()) / (z.std() + 1e-9)
    pass_rate = rng.binomial(16, 1.0 / (1.0 + np.exp(-(z + rng.normal(0, 0.5, n_rows))))) / 16
    quality = (z + rng.normal(0, 1.0, n_rows)) > 0
    n_tokens = (np.round(rng.lognormal(4.5, 0.6, n_rows)) + 5).astype(np.int32)
    return X, quality, pass_rate, n_tokens


def to_dataset(X, n_tokens):
    """A ``datasets.Dataset`` with the SAE columns of ``X`` (built from Arrow arrays, no Python rows)."""
    import datasets
    import pyarrow as pa

    offsets = pa.array(X.indptr.astype(np.int32))
    table = pa.table(
        {
            "sae_indices": pa.ListArray.from_arrays(offsets, pa.array(X.indices.astype(np.int32))),
            "sae_values": pa.ListArray.from_arrays(offsets, pa.array(X.data.astype(np.float32))),
            "sae_n_tokens": pa.array(n_tokens),
        }
    )
    return datasets.Dataset(table)


def log1p(X):
    Xt = X.astype(np.float64)
    Xt.data = np.log1p(Xt.data)
    return Xt


def l2_rows(X):
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    import scipy.sparse as sp

    return sp.diags(1.0 / norms) @ X


def row(arm: str, n: int, baseline: float | None, ours: float | None, baseline_name: str, **extra) -> dict:
    return {
        "arm": arm,
        "rows": n,
        "baseline": baseline_name,
        "baseline_s": baseline,
        "ours_s": ours,
        "ratio": ratio(baseline, ours),
        "ratio_str": times(ratio(baseline, ours)),
        "rows_s": None if not ours else n / ours,
        "peak_rss_mb": max_rss_mb(),
        **extra,
    }


def numpy_predict(role: str, est, X):
    """The baseline: the fitted model's prediction with numpy / scipy on the ready CSR matrix."""
    if role == "quality":
        return 1 / (1 + np.exp(-(log1p(X) @ est.coef_.ravel() + est.intercept_[0])))
    if role == "difficulty":
        return 1 - np.clip(log1p(X) @ est.coef_.ravel() + est.intercept_[0], 0, 1)
    return (l2_rows(log1p(X)) @ est.cluster_centers_.T).argmax(1)


def bench_size(n: int, args, fitted: dict) -> list[dict]:
    import datasets
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.linear_model import ElasticNet, LogisticRegression

    from hf_saerl import DifficultyProbe, QualityProbe, SAEClusterer, SAERLPipeline
    from hf_saerl.estimators.clustering import MINIBATCH_MIN_ROWS

    out = []
    start = time.perf_counter()
    X, quality, pass_rate, n_tokens = codes(n, args.d_sae, args.top_k)
    ds = to_dataset(X, n_tokens)
    print(f"# {n:,} rows: data built in {time.perf_counter() - start:.1f} s, nnz {X.nnz:,}", flush=True)
    d = args.d_sae

    def report(r: dict) -> None:
        out.append(r)
        print(
            f"#   {r['arm']}: baseline {r['baseline_s'] if r['baseline_s'] is not None else '-'} s, ours "
            f"{r['ours_s'] if r['ours_s'] is not None else '-'} s",
            flush=True,
        )

    if args.predict_only and not fitted:  # small, fast fits: only prediction is measured
        m = min(n, 2000)
        fitted["quality"] = QualityProbe(d, cv=None).fit(X[:m], quality[:m])
        fitted["difficulty"] = DifficultyProbe(d, label="pass_rate", cv=3, n_alphas=5).fit(X[:m], pass_rate[:m])
        fitted["clusterer"] = SAEClusterer(d, n_clusters=args.n_clusters).fit(X[:m])
    # quality probe
    if n <= args.max_fit_rows and not args.predict_only:
        LogisticRegression(max_iter=100).fit(log1p(X[:200]), quality[:200])  # warm-up (imports, thread pools)
        base, _, _ = timed(lambda: LogisticRegression(C=1.0, max_iter=1000).fit(log1p(X), quality))
        ours, _, probe = timed(lambda: QualityProbe(d, cv=None).fit(X, quality))
        report(row("quality fit", n, base, ours, "sklearn LogisticRegression on log1p(X)"))
        if n <= args.cv_rows:
            cv_s, _, _ = timed(lambda: QualityProbe(d).fit(X, quality))
            report(row("quality fit cv=5", n, base, cv_s, "one sklearn LogisticRegression fit"))
        fitted.setdefault("quality", probe)
    # difficulty probe: fitted on the first m rows (its labelled subset), m in --difficulty-rows
    todo = [] if args.predict_only else args.difficulty_rows
    for m in sorted(m for m in todo if m <= n and m not in fitted.setdefault("_difficulty_done", set())):
        Xm, ym = X[:m], pass_rate[:m]
        ours, _, dprobe = timed(lambda Xm=Xm, ym=ym: DifficultyProbe(d, label="pass_rate").fit(Xm, ym))
        a, l1 = float(dprobe.alpha_), float(dprobe.l1_ratio_)

        def sklearn_fit(Xm=Xm, ym=ym, a=a, l1=l1):
            return ElasticNet(alpha=a, l1_ratio=l1, max_iter=2000, tol=1e-4).fit(log1p(Xm), ym)

        base, _, _ = timed(sklearn_fit)
        report(
            row(
                "difficulty fit",
                m,
                base,
                ours,
                "one sklearn ElasticNet at the chosen alpha",
                spearman=dprobe.metrics_.get("spearman"),
            )
        )
        fitted["_difficulty_done"].add(m)
        fitted.setdefault("difficulty", dprobe)
    # clusterer
    if n <= args.max_fit_rows and not args.predict_only:
        space = l2_rows(log1p(X))
        if n > MINIBATCH_MIN_ROWS:
            km = MiniBatchKMeans(args.n_clusters, n_init=3, max_iter=300, batch_size=2048, random_state=0)
        else:
            km = KMeans(args.n_clusters, n_init=3, max_iter=300, random_state=0)
        base, _, _ = timed(lambda: km.fit(space))
        k = args.n_clusters
        ours, _, clusterer = timed(lambda: SAEClusterer(d, n_clusters=k).fit(X))
        report(row(f"clusterer fit k={k}", n, base, ours, "sklearn (MiniBatch)KMeans on the same rows"))
        lo, hi = args.auto_range
        auto, _, auto_fit = timed(lambda: SAEClusterer(d, n_clusters="auto", auto_range=(lo, hi)).fit(X))
        report(
            row(
                "clusterer fit auto",
                n,
                ours,
                auto,
                f"SAEClusterer k={k}",
                note=f"k in {lo}..{hi} on up to 2000 rows, chose {auto_fit.n_clusters_}",
            )
        )
        fitted.setdefault("clusterer", clusterer)
        del space

    # predict over a Dataset, with the models fitted at the smallest size
    mapped = {}
    for role, est in fitted.items():
        if role.startswith("_"):
            continue
        base, _, _ = timed(lambda role=role, est=est: numpy_predict(role, est, X), args.repeats)
        ours, _, mapped[role] = timed(lambda est=est: ds.map(est, batched=True, batch_size=1000), args.repeats)
        report(row(f"{role} predict", n, base, ours, "numpy on the ready CSR matrix", note="Dataset.map(batched=True)"))
    if all(role in fitted for role in ("quality", "difficulty", "clusterer")):
        pipe = SAERLPipeline(quality=fitted["quality"], difficulty=fitted["difficulty"], clusterer=fitted["clusterer"])

        def by_hand():
            out = ds
            for role in ("quality", "difficulty", "clusterer"):
                out = out.map(fitted[role], batched=True, batch_size=256)
            return out

        base, _, _ = timed(by_hand, args.repeats)
        ours, _, _ = timed(lambda: pipe(ds, batch_size=256), args.repeats)
        report(row("pipeline __call__", n, base, ours, "three Dataset.map calls by hand"))
    datasets.disable_caching()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument(
        "--difficulty-rows",
        type=int,
        nargs="*",
        default=[10_000],
        help="the DifficultyProbe is fitted on the first m rows (its labelled subset) for each m "
        "here (its alpha search is slow); it then predicts at every size",
    )
    parser.add_argument(
        "--max-fit-rows",
        type=int,
        default=1_000_000,
        help="fit the quality probe and the clusterer only up to this size (predict runs at all)",
    )
    parser.add_argument("--cv-rows", type=int, default=100_000, help="the default cv=5 quality fit up to this size")
    parser.add_argument("--n-clusters", type=int, default=16, help="k of the fixed-k clusterer")
    parser.add_argument(
        "--auto-range",
        type=int,
        nargs=2,
        default=[2, 16],
        metavar=("LO", "HI"),
        help="the k searched by n_clusters='auto'",
    )
    parser.add_argument("--d-sae", type=int, default=16_384)
    parser.add_argument("--top-k", type=int, default=64)
    parser.add_argument(
        "--predict-only",
        action="store_true",
        help="fit small models on 2,000 rows once and time only prediction and the pipeline",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="best of this many runs per predict/pipeline timing "
        "(both arms), which damps a shared machine's load spikes",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    import datasets

    datasets.disable_progress_bars()
    datasets.disable_caching()
    logging.getLogger("hf_saerl").setLevel(logging.WARNING)
    header(
        f"estimators: fit / predict at {', '.join(f'{n:,}' for n in args.rows)} rows "
        f"(d_sae {args.d_sae}, top-{args.top_k})"
    )
    fitted: dict = {}
    results = []
    for n in sorted(args.rows):
        results += bench_size(n, args, fitted)
    print()
    print_table(
        results,
        [
            ("arm", "arm", None),
            ("rows", "rows", ","),
            ("baseline_s", "baseline s", ".2f"),
            ("ours_s", "ours s", ".2f"),
            ("ratio_str", "base/ours", None),
            ("rows_s", "rows/s", ",.0f"),
            ("peak_rss_mb", "peak RSS MB", ".0f"),
        ],
    )
    print("baselines: " + "; ".join(sorted({f"{r['arm']}: {r['baseline']}" for r in results})))
    write_json(args.out, "estimators", args, results)


if __name__ == "__main__":
    main()
