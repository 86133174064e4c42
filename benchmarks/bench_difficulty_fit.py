"""Benchmark: fitting the DifficultyProbe, before issue 12 (nested ElasticNetCV grid) and now (warm-started paths).

Planted synthetic SAE codes, built to look like real ones: ``--d-sae`` latents (16,384), the ``--top-k`` (64)
strongest per row, latent popularity skewed like Zipf (a few latents fire in most rows, most in few),
non-negative log-normal activations, and a token count per row. The pass rate is the share of 16 simulated
rollouts that succeed, with a success probability that depends on 40 planted latents, on the prompt length
(longer is harder) and on noise, so the length baseline is a real competitor.

Arms (each in a fresh subprocess, run back to back at every size, on the same rows):

* ``old``: the DifficultyProbe fit as it was before issue 12, step for step: ``log1p``, the active columns,
  ``ElasticNetCV(l1_ratio=(0.1, 0.5, 0.9, 1.0), 50 alphas, 5 shuffled folds, tol=1e-4, max_iter=2000)`` on all
  rows, and for the out-of-fold metrics the same search again inside each of 5 outer folds
  (``cross_val_predict``). Those are six ElasticNetCV fits; each runs in its own subprocess and its time is
  added up, so that with ``--cache DIR`` a run that stops at ``--budget`` seconds can be continued by the
  same command. It is run at the sizes in ``--old-rows`` and given up once its fits have taken
  ``--old-timeout`` seconds in all ("did not finish in N s").
* ``new``: ``DifficultyProbe(d_sae).fit`` with its defaults, once it uses
  :class:`~hf_saerl.estimators.elastic_net.ElasticNetPathCV` (before that patch, the same fit is run directly:
  ``log1p`` + ``ElasticNetPathCV()`` + ``length_baseline``). Alpha and l1_ratio are chosen once by the folds,
  and the folds are scored at that choice (slightly optimistic).
* ``new-nested``: the same with ``cv_protocol="nested"`` (the search repeated inside each outer fold: honest
  out-of-fold metrics, like ``old``).

For each arm: seconds of the fit (data generation excluded), the out-of-fold Spearman the fit reports, and
the Spearman on ``--test-rows`` fresh rows from the same generator (held out: the fair comparison between
arms). The length baseline (the same regression on ``log1p(n_tokens)`` alone, same folds) is reported next to
them. The machine's 1-minute load average is recorded before each arm: on a shared machine, read times with it.

    python benchmarks/bench_difficulty_fit.py --rows 1000 10000        # old vs new, old given 300 s per size
    # the README numbers: the old fit gets 30 minutes at 1k rows and 5 at 10k, in runs of at most 9 minutes
    # (repeat the command until no old arm says "incomplete"; finished fits are kept in --cache)
    python benchmarks/bench_difficulty_fit.py --rows 1000 10000 50000 --old-timeout 1000:1800 10000:300 \\
        --budget 540 --cache /tmp/bench_difficulty_cache --out bench_difficulty_fit.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_ROLLOUTS = 16
N_SIGNAL = 40
OLD_PARTS = 6  # part 0: ElasticNetCV on all rows; parts 1-5: the same search inside each outer fold


def planted(n_rows: int, d_sae: int = 16_384, top_k: int = 64, seed: int = 0):
    """``(X, pass_rate, n_tokens, signal)``: an ``(n_rows, d_sae)`` CSR of top-k codes, pass rates in [0, 1] (a
    share of ``N_ROLLOUTS``), token counts, and the planted latents. The latent popularity and the planted
    weights depend on ``d_sae`` only, so rows drawn with another ``seed`` come from the same distribution."""
    import scipy.sparse as sp

    layout = np.random.default_rng(1234)
    popularity = 1.0 / (np.arange(d_sae, dtype=np.float64) + 5.0)
    popularity /= popularity.sum()
    latent_of_rank = layout.permutation(d_sae)
    signal = latent_of_rank[layout.choice(np.arange(5, min(600, d_sae)), N_SIGNAL, replace=False)]
    weights = layout.normal(0.0, 1.0, N_SIGNAL)

    rng = np.random.default_rng(seed)
    draws = rng.choice(d_sae, size=(n_rows, 3 * top_k), p=popularity)
    rows = []
    for row in draws:  # the first top_k distinct latents of each row
        _, first = np.unique(row, return_index=True)
        rows.append(row[np.sort(first)][:top_k])
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    indices = latent_of_rank[np.concatenate(rows)]
    values = rng.lognormal(0.0, 0.8, size=len(indices))
    X = sp.csr_matrix((values, indices, indptr), shape=(n_rows, d_sae))
    X.sort_indices()
    n_tokens = np.round(rng.lognormal(4.5, 0.6, size=n_rows)).astype(np.int64) + 5

    # the success logit: planted latents (on the log1p scale the probe sees), length, noise
    z = np.log1p(X[:, signal].toarray()) @ weights
    z = (z + 0.197) / 1.284  # fixed centring and scale (mean and sd over 100k rows), the same for every seed
    length = (np.log(n_tokens) - 4.565) / 0.565
    logit = z - 0.6 * length + rng.normal(0.0, 0.5, n_rows)
    pass_rate = rng.binomial(N_ROLLOUTS, 1.0 / (1.0 + np.exp(-logit))) / N_ROLLOUTS
    return X, pass_rate, n_tokens, signal


def _folds():
    from sklearn.model_selection import KFold

    return KFold(5, shuffle=True, random_state=0)


# ---------------------------------------------------------------------- arms (each runs in a subprocess)
def run_old_part(X, y, part: int) -> dict:
    """One of the six ElasticNetCV fits of the pre-issue-12 DifficultyProbe fit (see the module docstring)."""
    import sklearn
    from sklearn.linear_model import ElasticNetCV

    grid = {"alphas": 50} if _sklearn_at_least(sklearn.__version__, (1, 7)) else {"n_alphas": 50}
    start = time.perf_counter()
    Xt = X.copy()
    Xt.data = np.log1p(Xt.data)
    active = np.unique(Xt.indices)  # the old _fit_core fitted the active columns only
    Xt = Xt[:, active]
    model = ElasticNetCV(l1_ratio=[0.1, 0.5, 0.9, 1.0], cv=_folds(), max_iter=2000, tol=1e-4, random_state=0, **grid)
    if part == 0:
        model.fit(Xt, y)
        coef = np.zeros(X.shape[1])
        coef[active] = model.coef_
        out = {
            "coef": coef.tolist(),
            "intercept": float(model.intercept_),
            "alpha": float(model.alpha_),
            "l1_ratio": float(model.l1_ratio_),
        }
    else:  # what cross_val_predict(clone(model), Xt, y, cv=KFold(5, shuffle, 0)) does for one fold
        train, test = list(_folds().split(Xt))[part - 1]
        out = {"test": test.tolist(), "pred": model.fit(Xt[train], y[train]).predict(Xt[test]).tolist()}
    out["seconds"] = time.perf_counter() - start
    return out


def run_new(X, y, n_tokens, protocol: str = "once") -> dict:
    """``DifficultyProbe(d_sae).fit`` when it uses the fast path; the same steps directly otherwise."""
    from hf_saerl.estimators.probes import DifficultyProbe

    probe = DifficultyProbe(d_sae=X.shape[1], label="pass_rate")
    if "cv_protocol" in probe.get_params():
        start = time.perf_counter()
        probe.set_params(cv_protocol=protocol).fit(X, y, n_tokens=n_tokens)
        seconds = time.perf_counter() - start
        m = probe.metrics_
        return {
            "seconds": seconds,
            "oof": probe.cv_predictions_,
            "coef": probe.coef_,
            "intercept": float(probe.intercept_[0]),
            "alpha": m["alpha"],
            "l1_ratio": m["l1_ratio"],
            "length_baseline": m.get("length_baseline"),
            "via": "DifficultyProbe(d_sae).fit",
        }
    from hf_saerl.estimators.elastic_net import ElasticNetPathCV, length_baseline

    start = time.perf_counter()
    Xt = X.copy()
    Xt.data = np.log1p(Xt.data)
    model = ElasticNetPathCV(cv=_folds(), cv_protocol=protocol).fit(Xt, y)
    base = length_baseline(n_tokens, y, cv=_folds(), cv_protocol=protocol)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "oof": model.cv_predictions_,
        "coef": model.coef_,
        "intercept": model.intercept_,
        "alpha": model.alpha_,
        "l1_ratio": model.l1_ratio_,
        "length_baseline": base,
        "via": "log1p + ElasticNetPathCV + length_baseline (DifficultyProbe not patched yet)",
    }


def _arm_main(args: argparse.Namespace) -> None:
    X, y, n_tokens, _ = planted(args._n, args.d_sae, args.top_k, seed=0)
    if args._arm == "old":
        out = run_old_part(X, y, args._part)
    else:
        new = run_new(X, y, n_tokens, protocol="nested" if args._arm == "new-nested" else "once")
        out = _summary(new, y, args)
    print("RESULT " + json.dumps(out))


def _summary(fit: dict, y: np.ndarray, args: argparse.Namespace) -> dict:
    """The reported numbers of one finished fit: out-of-fold and held-out Spearman, the length baseline."""
    from scipy.stats import spearmanr

    from hf_saerl.estimators.metrics import regression_metrics

    Xte, yte, _, _ = planted(args.test_rows, args.d_sae, args.top_k, seed=1)
    Xte.data = np.log1p(Xte.data)
    coef = np.asarray(fit["coef"])
    base = fit.get("length_baseline")
    return {
        "seconds": round(fit["seconds"], 2),
        "oof_spearman": regression_metrics(y, np.asarray(fit["oof"]))["spearman"],
        "held_out_spearman": float(spearmanr(Xte @ coef + fit["intercept"], yte)[0]),
        "length_spearman": None if base is None else base["spearman"],
        "alpha": fit["alpha"],
        "l1_ratio": fit["l1_ratio"],
        "n_nonzero_coef": int(np.count_nonzero(coef)),
        "via": fit["via"],
    }


# ---------------------------------------------------------------------- driver
def _sklearn_at_least(version: str, target: tuple[int, int]) -> bool:
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    return parts >= target


def _subprocess(args: argparse.Namespace, arm: str, n_rows: int, part: int, timeout: float | None) -> dict | None:
    """Run one arm (or old part) in a fresh interpreter; None when it ran past ``timeout``."""
    cmd = [
        sys.executable,
        __file__,
        "--_arm",
        arm,
        "--_n",
        str(n_rows),
        "--_part",
        str(part),
        "--d-sae",
        str(args.d_sae),
        "--top-k",
        str(args.top_k),
        "--test-rows",
        str(args.test_rows),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"arm {arm} (part {part}) at {n_rows} rows failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len("RESULT ") :])


def _cache_file(args: argparse.Namespace, n_rows: int, part: int) -> Path | None:
    if args.cache is None:
        return None
    return args.cache / f"old_d{args.d_sae}_k{args.top_k}_n{n_rows}_part{part}.json"


def run_old_arm(args: argparse.Namespace, n_rows: int, deadline: float) -> dict:
    """The six old fits, each in a subprocess (cached with ``--cache``), until done, over time, or out of budget."""
    load = os.getloadavg()[0]
    limit = _old_timeout(args, n_rows)
    parts: dict[int, dict] = {}
    for part in range(OLD_PARTS):
        cached = _cache_file(args, n_rows, part)
        if cached is not None and cached.is_file():
            parts[part] = json.loads(cached.read_text(encoding="utf-8"))
            continue
        spent = sum(p["seconds"] for p in parts.values() if "seconds" in p)
        if any("timed_out" in p for p in parts.values()) or spent >= limit:
            break
        left = deadline - time.monotonic()
        if left <= 10:
            return {
                "arm": "old",
                "rows": n_rows,
                "seconds": None,
                "load_before": load,
                "status": f"incomplete ({len(parts)} of {OLD_PARTS} fits): run again with the same --cache",
            }
        timeout = min(limit - spent, left)
        begun = time.perf_counter()
        result = _subprocess(args, "old", n_rows, part, timeout)
        if result is None:
            if timeout < limit - spent:  # stopped by the budget of this invocation, not by old-timeout
                return {
                    "arm": "old",
                    "rows": n_rows,
                    "seconds": None,
                    "load_before": load,
                    "status": f"incomplete ({len(parts)} of {OLD_PARTS} fits): run again with the same --cache",
                }
            result = {"timed_out": True, "seconds": time.perf_counter() - begun}
        result["load_before"] = load
        parts[part] = result
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(result), encoding="utf-8")
    spent = sum(p["seconds"] for p in parts.values())
    loads = [p["load_before"] for p in parts.values() if "load_before" in p]
    if len(parts) < OLD_PARTS or any("timed_out" in p for p in parts.values()):
        return {
            "arm": "old",
            "rows": n_rows,
            "seconds": None,
            "load_before": max(loads, default=load),
            "fits_done": sum("timed_out" not in p for p in parts.values()),
            "status": f"did not finish in {limit:.0f} s",
        }
    oof = np.empty(n_rows)
    for part in range(1, OLD_PARTS):
        oof[np.asarray(parts[part]["test"])] = parts[part]["pred"]
    _, y, _, _ = planted(n_rows, args.d_sae, args.top_k, seed=0)
    fit = {
        "seconds": spent,
        "oof": oof,
        "length_baseline": None,
        **{k: parts[0][k] for k in ("coef", "intercept", "alpha", "l1_ratio")},
        "via": "ElasticNetCV nested in cross_val_predict (the pre-issue-12 DifficultyProbe fit)",
    }
    return {
        "arm": "old",
        "rows": n_rows,
        "load_before": max(loads),
        "status": "ok",
        "cv_protocol": "nested",
        "part_seconds": [round(parts[p]["seconds"], 1) for p in range(OLD_PARTS)],
        **_summary(fit, y, args),
    }


def run_new_arm(args: argparse.Namespace, arm: str, n_rows: int) -> dict:
    load = os.getloadavg()[0]
    result = _subprocess(args, arm, n_rows, 0, None)
    return {
        "arm": arm,
        "rows": n_rows,
        "load_before": load,
        "status": "ok",
        "cv_protocol": "nested" if arm == "new-nested" else "once",
        **result,
    }


def _parse_timeouts(values: list[str]) -> dict[int | None, float]:
    """``["300"]`` -> ``{None: 300.0}``; ``["1000:1800", "10000:300"]`` -> ``{1000: 1800.0, 10000: 300.0}``."""
    out: dict[int | None, float] = {}
    for value in values:
        rows, _, seconds = value.rpartition(":")
        out[int(rows) if rows else None] = float(seconds)
    return out


def _old_timeout(args: argparse.Namespace, n_rows: int) -> float:
    return args.old_timeouts.get(n_rows, args.old_timeouts.get(None, 300.0))


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: list[dict]) -> None:
    header = (
        f"{'rows':>7} {'arm':<11} {'seconds':>9} {'oof_spearman':>13} {'held_out_sp':>12} {'length_sp':>10} "
        f"{'alpha':>9} {'l1_ratio':>8} {'nonzero':>8} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if r["status"] != "ok":
            print(f"{r['rows']:>7} {r['arm']:<11} {r['status']}  (load {r['load_before']:.1f})")
            continue
        print(
            f"{r['rows']:>7} {r['arm']:<11} {r['seconds']:>9.1f} {_fmt(r['oof_spearman'], '.4f'):>13} "
            f"{_fmt(r['held_out_spearman'], '.4f'):>12} {_fmt(r['length_spearman'], '.4f'):>10} "
            f"{r['alpha']:>9.2e} {r['l1_ratio']:>8.2f} {r['n_nonzero_coef']:>8} {r['load_before']:>5.1f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1000, 10_000, 50_000], help="labelled rows per size")
    parser.add_argument(
        "--old-rows", type=int, nargs="*", default=[1000, 10_000], help="sizes at which the old fit is run (it is slow)"
    )
    parser.add_argument(
        "--old-timeout",
        nargs="+",
        default=["300"],
        metavar="[ROWS:]SECONDS",
        help="seconds of old fits (all six together) before the old arm is given up; one value "
        "for every size, or ROWS:SECONDS pairs (e.g. 1000:1800 10000:300)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="stop starting old fits after this many seconds of this run (continue with --cache)",
    )
    parser.add_argument("--cache", type=Path, default=None, help="folder keeping finished old fits between runs")
    parser.add_argument("--no-nested", action="store_true", help="skip the new-nested arm")
    parser.add_argument("--d-sae", type=int, default=16_384)
    parser.add_argument("--top-k", type=int, default=64)
    parser.add_argument("--test-rows", type=int, default=5000, help="fresh rows for the held-out Spearman")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--_arm", help=argparse.SUPPRESS)
    parser.add_argument("--_n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_part", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.old_timeouts = _parse_timeouts(args.old_timeout)
    if args._arm:
        _arm_main(args)
        return

    deadline = time.monotonic() + (args.budget if args.budget is not None else float("inf"))
    results = []
    for n_rows in args.rows:
        arms = (["old"] if n_rows in args.old_rows else []) + ["new"] + ([] if args.no_nested else ["new-nested"])
        for arm in arms:
            result = run_old_arm(args, n_rows, deadline) if arm == "old" else run_new_arm(args, arm, n_rows)
            results.append(result)
            print(
                f"# {arm} at {n_rows} rows: {result['status']}"
                + (f", {result['seconds']:.1f} s" if result.get("seconds") is not None else ""),
                flush=True,
            )
    print()
    print_table(results)
    if args.out:
        import sklearn

        meta = {
            "python": platform.python_version(),
            "sklearn": sklearn.__version__,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "d_sae": args.d_sae,
            "top_k": args.top_k,
            "test_rows": args.test_rows,
            "old_timeout_s": {str(k or "any"): v for k, v in args.old_timeouts.items()},
            "n_rollouts": N_ROLLOUTS,
            "n_signal": N_SIGNAL,
        }
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
