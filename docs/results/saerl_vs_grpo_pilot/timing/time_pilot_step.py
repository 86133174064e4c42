"""Time the pilot preset's GRPO step and greedy evaluation on SmolLM2-135M (CPU, one thread, as one lane), with the
recipe's own code: 2 vanilla steps of 4 x 4 (<= 32 new tokens) and the greedy evaluation of 32 held-out problems.
No preparation (SAE, labels) and no selector: this sizes the pilot, it is not a run of it.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python docs/results/saerl_vs_grpo_pilot/timing/time_pilot_step.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
sys.path.insert(0, str(ROOT))  # this checkout's hf_saerl, not an installed one
from hf_saerl.rollouts import ReasoningGymVerifier  # noqa: E402  # after the sys.path line above, on purpose

spec = importlib.util.spec_from_file_location("svg", ROOT / "recipes" / "saerl_vs_grpo.py")
assert spec is not None and spec.loader is not None
svg = importlib.util.module_from_spec(spec)
sys.modules["svg"] = svg
spec.loader.exec_module(svg)

torch.set_num_threads(1)
load_start = list(os.getloadavg())
cfg = dict(svg.PRESETS["pilot"], preset="pilot", max_steps=2, evaluate=False)
pool, heldout, _ = svg.build_pool(cfg)

model, tokenizer = svg.load_policy(cfg)
light = ["prompt", "answer", "metadata"]
prepared = {
    "sets": {"vanilla": pool.select_columns(light)},
    "heldout": heldout.select(range(32)),
    "verifier": ReasoningGymVerifier(),
    "probe": None,
}
with tempfile.TemporaryDirectory() as out:
    record = svg.run_arm("vanilla", 0, cfg, model, tokenizer, prepared, Path(out))
    steps = svg.read_jsonl(Path(out) / "runs" / "vanilla_seed0" / svg.STEPS_FILE)
t0 = time.perf_counter()
acc, rows = svg.evaluate(model, tokenizer, prepared["heldout"], prepared["verifier"], cfg)
eval_s = time.perf_counter() - t0
result = {
    "what": "2 vanilla GRPO steps of the pilot preset (4 prompts x 4 generations, <= 32 new tokens) and greedy "
    "evaluation of 32 held-out problems, SmolLM2-135M fp32, CPU, 1 torch thread",
    "step_time_s": record["step_time_s"],
    "steps": steps,
    "eval_32_problems_s": eval_s,
    "eval_mean_tokens": sum(r["n_tokens"] for r in rows) / len(rows),
    "eval_greedy_accuracy_32_untrained": acc["greedy"],
    "loadavg_start": load_start,
    "loadavg_end": list(os.getloadavg()),
    "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    "cpu_count": os.cpu_count(),
}
(HERE / "pilot_step_timing.json").write_text(json.dumps(result, indent=1))
print(json.dumps({k: v for k, v in result.items() if k != "steps"}, indent=1))
