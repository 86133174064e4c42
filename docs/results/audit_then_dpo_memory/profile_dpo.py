"""Peak resident memory of audit_then_dpo.py's training stages at the cpu preset, bounded, before and after.

Runs, in one process, what the recipe does between its audit and its comparison, on the longest pairs (so the
bounded run meets the largest batches): load SmolLM2-135M-Instruct, prepare the cpu preset's 96 CHAMP pairs exactly
as the recipe does (64-token responses, chat format), then ``train_dpo`` twice in a row (the DPO stage, then the
intervention stage, here plain DPO: the same memory), ``--max-steps`` steps each, with the recipe file given
(``--recipe``: the current one, or the one from before the change). A thread samples VmRSS every 0.2 s; the
kernel's VmHWM (peak RSS) is read at the end. Also writes the token lengths of the pairs and, to check that the
change computes the same thing, the training logs and per-tensor sums of the trained weights.

    OMP_NUM_THREADS=1 python docs/results/audit_then_dpo_memory/profile_dpo.py --recipe recipes/audit_then_dpo.py \\
        --out docs/results/audit_then_dpo_memory/after.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import tempfile
import threading
import time
from pathlib import Path


def rss_gb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


class StopRun(Exception):
    """SIGTERM arrived (e.g. from ``timeout``): write what was measured so far, marked incomplete."""


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise StopRun(f"stopped by signal {signum} at {time.strftime('%H:%M:%S', time.gmtime())} UTC")


class Phases:
    """Exact peak RSS per training phase: at each change of phase the kernel's VmHWM (the peak since the last reset)
    is charged to the phase that ends, then reset (``/proc/self/clear_refs``: 5). Phases: ``precompute ref`` (TRL's
    reference log-probs), ``forward`` (``compute_loss``), ``backward`` (from the loss to the optimizer step or the
    next micro-batch), ``optimizer step`` (``AdamW.step``), ``other`` (zero_grad, logging, data loading)."""

    def __init__(self) -> None:
        self.stage, self.phase = "start", "other"
        self.peaks: dict[str, dict[str, float]] = {}
        self.entry: dict[str, dict[str, float]] = {}
        self.losses: list[list[float]] = []

    def enter(self, phase: str) -> None:
        key = f"{self.stage}: {self.phase}"
        self.peaks.setdefault(key, {"peak_gb": 0.0, "count": 0})
        self.peaks[key]["peak_gb"] = max(self.peaks[key]["peak_gb"], rss_gb("VmHWM"))
        self.peaks[key]["count"] += 1
        Path("/proc/self/clear_refs").write_text("5")
        self.phase = phase
        key = f"{self.stage}: {phase}"
        rss = rss_gb()
        low, high = self.entry.get(key, (rss, rss))
        self.entry[key] = (min(low, rss), max(high, rss))

    def install(self) -> None:
        """Wrap TRL's DPOTrainer (and so its subclasses) and torch's AdamW to mark the phases."""
        import torch
        from trl.trainer.dpo_trainer import DPOTrainer

        phases = self

        def wrap(owner, name, before, after):
            real = getattr(owner, name)

            def wrapped(*a, **k):
                phases.enter(before)
                try:
                    return real(*a, **k)
                finally:
                    phases.enter(after)

            setattr(owner, name, wrapped)

        wrap(DPOTrainer, "_precompute_ref_logps", "precompute ref", "other")
        wrap(DPOTrainer, "compute_loss", "forward", "backward")
        wrap(torch.optim.AdamW, "step", "optimizer step", "other")
        real_train = DPOTrainer.train

        def train(trainer, *a, **k):
            try:
                return real_train(trainer, *a, **k)
            finally:
                phases.losses.append([h["loss"] for h in trainer.state.log_history if "loss" in h])

        DPOTrainer.train = train  # type: ignore[method-assign]  # a profiling wrapper, on purpose

    def summary(self) -> dict[str, dict[str, float]]:
        self.enter("other")
        return {
            k: {"peak_gb": round(v["peak_gb"], 3), "rss_at_entry_gb": [round(x, 3) for x in self.entry.get(k, ())]}
            for k, v in self.peaks.items()
        }


class Sampler(threading.Thread):
    """VmRSS every ``every`` seconds; the peak per stage."""

    def __init__(self, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.every, self.stage, self.stop = every, "start", False
        self.peaks: dict[str, float] = {}
        self.start_time = time.time()
        self.trace: list[tuple[float, float, str]] = []

    def run(self) -> None:
        while not self.stop:
            r = rss_gb()
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), r)
            self.trace.append((round(time.time() - self.start_time, 1), round(r, 3), self.stage))
            time.sleep(self.every)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--n-pairs", type=int, default=12, help="the longest pairs kept (max_steps x batch_size)")
    args = parser.parse_args()
    load_at_start = list(os.getloadavg())
    sampler = Sampler()
    sampler.start()

    import torch

    torch.set_num_threads(1)
    phases = Phases()
    phases.install()
    spec = importlib.util.spec_from_file_location("recipe", args.recipe)
    assert spec is not None and spec.loader is not None
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    cfg = dict(recipe.PRESETS["cpu"])

    from hf_saerl.demo.champ import champ_preference_pairs
    from hf_saerl.models.embedded import load_smollm2

    sampler.stage = "load"
    model, tok = load_smollm2(device="cpu")
    model.eval()
    sampler.stage = "pairs"
    pairs = champ_preference_pairs(seed=0).shuffle(seed=0)
    pairs = pairs.select(range(min(cfg["n_train"], len(pairs))))
    pairs = recipe.cut_responses(pairs, tok, cfg["response_tokens"])
    pairs = pairs.filter(lambda r: bool(r["chosen"]) and bool(r["rejected"]))
    pairs = recipe.to_chat(pairs)
    lengths = []
    for row in pairs:
        text = tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        full = [
            len(
                tok(tok.apply_chat_template(row["prompt"] + row[side], tokenize=False), add_special_tokens=False)[
                    "input_ids"
                ]
            )
            for side in ("chosen", "rejected")
        ]
        lengths.append((len(tok(text, add_special_tokens=False)["input_ids"]), full))
    n_prompt = [n for n, _ in lengths]
    order = sorted(range(len(pairs)), key=lambda i: -n_prompt[i])[: args.n_pairs]
    subset = pairs.select(sorted(order))

    # The recipe before the change has no max_steps argument: inject it into DPOConfig for both, the same way.
    import trl

    real = trl.DPOConfig

    def bounded(*a, **k):
        k["max_steps"] = args.max_steps
        return real(*a, **k)

    trl.DPOConfig = bounded  # type: ignore[misc,assignment]  # a wrapper with the same call signature, on purpose
    out = {
        "recipe": str(args.recipe),
        "max_steps": args.max_steps,
        "n_pairs": len(subset),
        "prompt_tokens": {
            "all_96": {"max": max(n_prompt), "mean": sum(n_prompt) / len(n_prompt), "min": min(n_prompt)},
            "kept": sorted(n_prompt[i] for i in order),
        },
        "sequence_tokens_max": max(max(f) for _, f in lengths),
        "stages": {},
    }
    out["complete"] = False
    signal.signal(signal.SIGTERM, stop_on_sigterm)  # `timeout` ends a bounded run: keep what it measured
    try:
        for stage in ("dpo", "intervention"):
            sampler.stage = phases.stage = f"train {stage}"
            phases.enter("other")
            t = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                policy, log = recipe.train_dpo(model, tok, subset, cfg, tmp, concept_lambda=None, seed=0)
            sums = {n: [float(p.double().sum()), float((p.double() ** 2).sum())] for n, p in policy.named_parameters()}
            sampler.stage = phases.stage = f"after {stage}"
            phases.enter("other")
            del policy
            if hasattr(recipe, "release_memory"):
                recipe.release_memory()
            out["stages"][stage] = {"seconds": round(time.time() - t, 1), "log": log, "rss_after_gb": rss_gb()}
            if stage == "dpo":
                out["weight_sums"] = sums
        out["complete"] = True
    except StopRun as err:
        out["stopped"] = str(err)
    sampler.stop = True
    sampler.join()
    out["peak_by_phase_gb"] = phases.summary()  # resets VmHWM at each phase: the run's peak is their maximum
    out["peak_rss_gb"] = max(v["peak_gb"] for v in out["peak_by_phase_gb"].values())
    out["peak_rss_gb_sampled"] = max(sampler.peaks.values())
    out["losses_per_step"] = dict(zip(("dpo", "intervention"), phases.losses, strict=False))
    out["torch_threads"] = torch.get_num_threads()
    out["peak_by_stage_gb"] = {k: round(v, 3) for k, v in sampler.peaks.items()}
    out["trace"] = sampler.trace[::5]
    out["load_avg_at_end"] = list(os.getloadavg())
    out["load_avg_at_start"] = load_at_start
    args.out.write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps({k: out[k] for k in ("peak_rss_gb", "peak_by_stage_gb", "peak_by_phase_gb")}, indent=1))


if __name__ == "__main__":
    main()
