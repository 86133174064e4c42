"""Rank consistency under torchrun: two DDP ranks (gloo) each score their half of every batch, all-gather the rewards,
update their own selector, and must choose the same prompts as each other and as one process doing it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

WORKER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import scipy.sparse as sp
    import torch.distributed as dist
    from hf_saerl.selection import LearnabilitySelector, LinearProxy, SelectionConfig

    out_dir = sys.argv[1]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(0)  # the same pool and proxy on every rank, as after a shared load
    X = sp.random(300, 16, density=0.3, random_state=0, format="csr")
    true_p = np.clip(0.2 + X @ rng.normal(0, 0.2, 16), 0, 1)
    proxy = LinearProxy(X, np.zeros(16), 0.2, alpha=1e-3, l1_ratio=0.5, residual_var=0.03)
    config = SelectionConfig(seed=11, refit_every=3, refit_min_rows=8, n_candidates=128)
    selector = LearnabilitySelector(300, config, proxy=proxy, cluster_ids=np.arange(300) % 5)
    chosen = []
    for step in range(12):
        batch = selector.select(8)
        mine = batch[rank::world]  # this rank generates for its share of the batch
        wins = np.random.default_rng([step]).binomial(4, true_p[batch])[rank::world]
        gathered = [None] * world
        dist.all_gather_object(gathered, (mine.tolist(), wins.tolist()))
        rows = np.concatenate([np.asarray(g[0]) for g in gathered])
        counts = np.concatenate([np.asarray(g[1]) for g in gathered])
        selector.update(rows, counts, 4)
        chosen.append(batch.tolist())
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"chosen": chosen, "n_refits": selector.n_refits}, f)
    dist.barrier()
    dist.destroy_process_group()
""")


def _single_process() -> list[list[int]]:
    import scipy.sparse as sp

    from hf_saerl.selection import LearnabilitySelector, LinearProxy, SelectionConfig

    rng = np.random.default_rng(0)
    X: Any = sp.random(300, 16, density=0.3, random_state=0, format="csr")
    true_p = np.clip(0.2 + X @ rng.normal(0, 0.2, 16), 0, 1)
    proxy = LinearProxy(X, np.zeros(16), 0.2, alpha=1e-3, l1_ratio=0.5, residual_var=0.03)
    config = SelectionConfig(seed=11, refit_every=3, refit_min_rows=8, n_candidates=128)
    selector = LearnabilitySelector(300, config, proxy=proxy, cluster_ids=np.arange(300) % 5)
    chosen = []
    for step in range(12):
        batch = selector.select(8)
        wins = np.random.default_rng([step]).binomial(4, true_p[batch])
        order = np.concatenate([np.arange(8)[r::2] for r in range(2)])  # the gathered order: rank 0's, then rank 1's
        selector.update(batch[order], wins[order], 4)
        chosen.append(batch.tolist())
    return chosen


def test_two_ranks_choose_identical_batches(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=0",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=127.0.0.1:0",
        str(script),
        str(tmp_path),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["chosen"] == ranks[1]["chosen"]
    assert ranks[0]["n_refits"] == 4  # refits happened on both ranks, at the same updates
    assert ranks[0]["chosen"] == _single_process()
