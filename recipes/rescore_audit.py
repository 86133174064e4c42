"""Re-score the saved rollouts of ``audit_then_dpo.py`` with both concept scores (share, rate): no new training.

``docs/audit_validation.md`` found that answer length drives every concept score of its CPU run. This script
reads back a finished run's rollouts (``OUT/seed*/rollouts_{reference,dpo,intervention}.json``), re-fits the same
audit (the recipe's own loader, pairs and settings; checked against the run's saved per-concept table), scores
every rollout once with both scores of :mod:`hf_saerl.audit.shift` (``share``: latents firing anywhere in the
completion, the recipe's; ``rate``: their per-token firing rate, length-controlled), and writes one JSON with, per
seed, trained model and score: the fit metrics of every view, the mean shift over all concepts (the across-the-board
length effect), the measurement noise (the share of the shifts' variance that their standard errors explain, and
the reliability left) and the two seeds' agreement with each other.

    OMP_NUM_THREADS=1 .venv/bin/python recipes/rescore_audit.py --results docs/results/audit_then_dpo_cpu
    # -> docs/results/audit_then_dpo_cpu/rescore.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("rescore_audit")

VIEWS = ("all", "flagged", "top", "regions", "regions_flagged")


def _recipe() -> Any:
    """``recipes/audit_then_dpo.py`` as a module (``recipes/`` is not a package)."""
    path = Path(__file__).with_name("audit_then_dpo.py")
    spec = importlib.util.spec_from_file_location("audit_then_dpo", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def noise_summary(table: Any) -> dict[str, float]:
    """How much of the spread of the measured shifts over concepts is measurement noise.

    ``noise_share`` = mean(shift_se²) / var(measured_shift) over the concepts with a finite standard error;
    ``reliability`` = 1 − noise_share (floored at 0): the share of the variance that is not sampling noise, which
    caps the R² any prediction can reach; ``n_abs_z_gt_3`` counts the concepts whose shift is 3 standard errors
    from 0, ``mean_shift`` is the mean over all concepts (a shift of every concept at once, e.g. length).

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"measured_shift": [0.2, -0.2, 0.0, 0.0], "shift_se": [0.1, 0.1, 0.1, 0.1],
        ...                   "shift_z": [2.0, -2.0, 0.0, 0.0]})
        >>> {k: round(v, 3) for k, v in noise_summary(t).items()}
        {'mean_shift': 0.0, 'mean_abs_shift': 0.1, 'noise_share': 0.375, 'reliability': 0.625, 'n_abs_z_gt_3': 0}
    """
    shift = table["measured_shift"].to_numpy(np.float64)
    se = table["shift_se"].to_numpy(np.float64)
    ok = np.isfinite(se)
    var = float(np.var(shift[ok], ddof=1)) if ok.sum() > 1 else float("nan")
    noise = float(np.mean(se[ok] ** 2)) / var if var > 0 else float("nan")
    return {
        "mean_shift": float(np.mean(shift)),
        "mean_abs_shift": float(np.mean(np.abs(shift))),
        "noise_share": noise,
        "reliability": max(0.0, 1.0 - noise) if np.isfinite(noise) else float("nan"),
        "n_abs_z_gt_3": int(np.sum(np.abs(table["shift_z"].to_numpy(np.float64)) > 3)),
    }


def compare_both(
    audit: Any, scores: dict[str, dict[str, np.ndarray]], trained: str, regions: list[str] | None, top: int = 10
) -> dict[str, Any]:
    """Every view's metrics for both scores of ``trained`` against the reference, plus the cross check (the rate
    shift against the audit's share Δ) and :func:`noise_summary`; the tables are returned under ``_tables``."""
    from hf_saerl.audit.shift import (
        SCORES,
        audit_predictions,
        compare_regions,
        compare_shift,
        fit_metrics,
        region_predictions,
    )

    out: dict[str, Any] = {"_tables": {}}
    share_pred = audit_predictions(audit, "share")
    for score in SCORES:
        pred = audit_predictions(audit, score)
        ref, tr = scores["reference"][score], scores[trained][score]
        table, metrics = compare_shift(
            pred["predicted_delta"],
            ref,
            tr,
            flagged=pred["flagged"],
            flagged_sign=np.where(pred["flagged"], pred["flagged_sign"], 0),
            predicted_z=pred["predicted_z"],
            top=top,
        )
        if regions is not None:
            _, region_metrics = compare_regions(region_predictions(audit, score), ref, tr, regions, regions)
            metrics.update(region_metrics)
        out[score] = {"metrics": metrics, "noise": noise_summary(table)}
        out["_tables"][score] = table
    rate_shift = out["_tables"]["rate"]["measured_shift"].to_numpy()
    out["rate_shift_vs_share_delta"] = fit_metrics(share_pred["predicted_delta"], rate_shift)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Re-fit the run's audit, re-score its saved rollouts with both scores, write ``--out`` (JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("docs/results/audit_then_dpo_cpu"),
        help="the run's folder, holding seed<N>/ sub-folders with results.json and the rollouts",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=None, help="default: RESULTS/rescore.json")
    parser.add_argument("--sae", type=str, default=None, help="as the recipe's --sae (default: the demo's, cached)")
    parser.add_argument(
        "--trained",
        nargs="+",
        choices=("dpo", "intervention"),
        default=["dpo", "intervention"],
        help="the trained models to re-score, each against the reference",
    )
    parser.add_argument(
        "--allow-other-audit",
        action="store_true",
        help="go on when the re-fitted audit differs from the run's (e.g. an SAE retrained elsewhere): both scores "
        "are then compared on the re-fitted audit, and the JSON says so",
    )
    parser.add_argument(
        "--audit-cache",
        type=Path,
        default=None,
        help="a folder: the re-fitted audit is saved there and read back on the next run",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "datasets", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    start = time.perf_counter()
    recipe = _recipe()
    runs = {s: json.loads((args.results / f"seed{s}" / "results.json").read_text()) for s in args.seeds}
    cfg = dict(runs[args.seeds[0]]["config"])
    preset = runs[args.seeds[0]]["preset"]
    if any(r["config"] != cfg or r["preset"] != preset for r in runs.values()):
        raise SystemExit("The seeds' runs have different configs; re-score them separately.")
    cfg["sae"] = args.sae

    import torch

    from hf_saerl import SAEEncoder
    from hf_saerl.audit import PreferenceAudit
    from hf_saerl.audit.shift import SCORES, rollout_concept_scores

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    loader = recipe.load_ci if preset == "ci" else recipe.load_champ_run
    reference, tok, sae, pairs, held_out, held_out_regions, _info = loader(cfg)
    reference.eval()
    pairs = recipe.cut_responses(pairs, tok, cfg["response_tokens"])
    pairs = pairs.filter(lambda r: bool(r["chosen"]) and bool(r["rejected"]))
    if cfg["chat"]:
        pairs, held_out = recipe.to_chat(pairs), [[{"role": "user", "content": p}] for p in held_out]
    encoder = SAEEncoder(reference, sae, tokenizer=tok, max_length=512)
    timing = {"load": round(time.perf_counter() - start, 1)}
    region = "category" if len(set(pairs["category"])) > 1 else None  # as the recipe fits it
    if args.audit_cache is not None and (args.audit_cache / "config.json").is_file():
        audit = PreferenceAudit.from_pretrained(args.audit_cache, encoder=encoder, progress=False)
    else:
        # encode_prompt=False: the prompts alone only feed the table's prompt_share column, not the concepts, the
        # statistics or the predictions (a third of the audit's encoding saved)
        audit = PreferenceAudit(
            encoder,
            region_column=region,
            n_regions=1 if region is None else "auto",
            encode_prompt=False,
            progress=False,
        ).fit(pairs)
        if args.audit_cache is not None:
            audit.save_pretrained(args.audit_cache)
    timing["audit"] = round(time.perf_counter() - start - sum(timing.values()), 1)

    # The re-fitted audit must be the run's: same concept count, same predicted Δ per concept as its saved table.
    import pandas as pd

    from hf_saerl.audit.shift import audit_predictions

    def saved_table(folder: Path, trained: str) -> pd.DataFrame:
        """The run's per-concept table: ``<trained>_table.csv`` where kept, else its ``<trained>_validation.json``."""
        csv = folder / f"{trained}_table.csv"
        if csv.is_file():
            table = pd.read_csv(csv)
        else:
            table = pd.DataFrame(json.loads((folder / f"{trained}_validation.json").read_text())["table"])
        return table.sort_values("concept").reset_index(drop=True)

    share_pred = audit_predictions(audit, "share")
    audit_check: dict[str, Any] = {}
    for s, run in runs.items():
        saved = saved_table(args.results / f"seed{s}", "dpo")
        same_size = audit.concepts_.n_concepts_ == run["audit"]["n_concepts"] and len(saved) == len(share_pred)
        gap = (
            float(np.max(np.abs(saved["predicted_delta"].to_numpy() - share_pred["predicted_delta"].to_numpy())))
            if same_size
            else float("nan")
        )
        audit_check[f"seed{s}"] = {
            "n_concepts_saved": int(run["audit"]["n_concepts"]),
            "max_abs_predicted_delta_difference": gap,
            "ok": bool(same_size and gap <= 1e-5),  # the CSV keeps 6 decimals
        }
    matches = all(c["ok"] for c in audit_check.values())
    if not matches and not args.allow_other_audit:
        raise SystemExit(
            f"The re-fitted audit is not the run's ({audit_check}): another SAE? Pass the run's --sae, or "
            "--allow-other-audit to compare both scores on this audit anyway."
        )

    result: dict[str, Any] = {
        "what": "the saved rollouts of recipes/audit_then_dpo.py re-scored with the share and the rate score",
        "results_folder": str(args.results),
        "seeds": args.seeds,
        "config": cfg,
        "audit": {
            "n_concepts": int(audit.concepts_.n_concepts_),
            "n_flagged": int(share_pred["flagged"].sum()),
            "matches_saved_tables": matches,
            "check": audit_check,
        },
        "per_seed": {},
        "reproduces_saved_share_shifts": {},
    }
    shifts: dict[str, dict[str, dict[int, np.ndarray]]] = {t: {sc: {} for sc in SCORES} for t in args.trained}
    for s in args.seeds:
        folder = args.results / f"seed{s}"
        stages = ["reference", *args.trained]
        rollouts = {name: json.loads((folder / f"rollouts_{name}.json").read_text()) for name in stages}
        scores: dict[str, dict[str, np.ndarray]] = {}
        tokens: dict[str, float] = {}
        for name in stages:
            share, enc_info = rollout_concept_scores(audit, held_out, rollouts[name], batch_size=16, score="share")
            scores[name] = {"share": share, "rate": enc_info["rates"]}
            tokens[name] = enc_info["mean_tokens"]
        row: dict[str, Any] = {"mean_tokens": tokens}
        per_rollout = [held_out_regions[i] for i, r in enumerate(rollouts["reference"]) for _ in r]
        for trained in args.trained:
            both = compare_both(audit, scores, trained, per_rollout if region is not None else None)
            tables = both.pop("_tables")
            row[trained] = both
            for score in SCORES:
                shifts[trained][score][s] = tables[score]["measured_shift"].to_numpy()
            saved = saved_table(folder, trained)
            mine = tables["share"]["measured_shift"].to_numpy()
            gap = (
                float(np.max(np.abs(saved["measured_shift"].to_numpy() - mine)))
                if len(saved) == len(mine)
                else float("nan")  # another audit (another concept count): nothing to compare concept by concept
            )
            result["reproduces_saved_share_shifts"][f"seed{s}/{trained}"] = {
                "max_abs_difference": gap,
                "ok": bool(gap < 1e-4),
            }
        result["per_seed"][f"seed{s}"] = row
        timing[f"score seed {s}"] = round(time.perf_counter() - start - sum(timing.values()), 1)
    if len(args.seeds) == 2:  # do the two seeds' DPO models move the concepts alike?
        from hf_saerl.audit.shift import fit_metrics

        a, b = args.seeds
        result["seed_agreement"] = {
            t: {
                sc: {
                    k: fit_metrics(shifts[t][sc][a], shifts[t][sc][b])[k]
                    for k in ("pearson", "pearson_p", "spearman", "r2")
                }
                for sc in SCORES
            }
            for t in shifts
        }
    result["timing_s"] = timing
    result["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_avg_at_end": list(os.getloadavg()),
    }
    from hf_saerl.core.serialization import write_json

    out = args.out or args.results / "rescore.json"
    write_json(out, result)
    print(
        json.dumps(
            {
                s: {
                    t: {
                        sc: {v: round(result["per_seed"][s][t][sc]["metrics"][v]["r2"], 3) for v in ("all", "top")}
                        for sc in SCORES
                    }
                    for t in ("dpo",)
                }
                for s in result["per_seed"]
            },
            indent=1,
        )
    )
    print(f"Wrote {out}")
    return result


if __name__ == "__main__":
    main()
