"""Scale-out on one machine: two DDP ranks (torchrun, gloo) consume the curriculum stream and together see every
example exactly once, each through a StatefulDataLoader with workers, as a trainer would.

CI runs a small version (300 rows, 2 ranks x 2 workers); ``-m slow`` runs 20,000 rows with a resume in the middle.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torchdata")

WORKER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import torch.distributed as dist
    from datasets import Dataset
    from torchdata.stateful_dataloader import StatefulDataLoader
    from hf_saerl.curriculum import CurriculumDataset

    n_rows, out_dir, resume_at = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    rng = np.random.default_rng(0)  # the same data on every rank, as after a shared load_dataset
    ds = Dataset.from_dict({"row": np.arange(n_rows), "cluster_id": rng.integers(0, 5, n_rows),
                            "difficulty": rng.random(n_rows)})

    def loader(state=None):
        stream = CurriculumDataset(ds, batch_size=16, seed=3)  # rank and world size from torch.distributed
        dl = StatefulDataLoader(stream, batch_size=None, num_workers=2)
        if state is not None:
            dl.load_state_dict(state)
        return dl

    seen, dl = [], loader()
    for i, item in enumerate(dl):
        seen.append(int(item["row"]))
        if resume_at and i + 1 == resume_at:  # stop mid-epoch, as a preempted job would, and resume
            state = dl.state_dict()
            break
    else:
        state = None
    if state is not None:
        seen += [int(item["row"]) for item in loader(state)]
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(seen, f)
    dist.barrier()
    dist.destroy_process_group()
""")


def _run(tmp_path: Path, n_rows: int, resume_at: int) -> list[list[int]]:
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
        str(n_rows),
        str(tmp_path),
        str(resume_at),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


def _check_exactly_once(per_rank: list[list[int]], n_rows: int) -> None:
    both = per_rank[0] + per_rank[1]
    assert sorted(both) == list(range(n_rows)), "every row exactly once across the two ranks"
    assert not set(per_rank[0]) & set(per_rank[1])
    assert abs(len(per_rank[0]) - len(per_rank[1])) <= n_rows // 16 + 1  # ranks share each batch


def test_two_ranks_see_every_example_exactly_once(tmp_path):
    _check_exactly_once(_run(tmp_path, 300, resume_at=0), 300)


@pytest.mark.slow
def test_two_ranks_exactly_once_at_scale_with_a_resume(tmp_path):
    _check_exactly_once(_run(tmp_path, 20_000, resume_at=4_321), 20_000)
