"""The README's code blocks run as written: every ```python block, in order, in one namespace, and every
``hf-saerl`` command of the ```bash blocks after them, through :func:`hf_saerl.cli.main`.

They run in a temporary folder holding the files the README names (``prompts.jsonl``, ``new_prompts.jsonl``,
``labelled.jsonl``, ``pairs.jsonl``, ``./my-sae``), with these stand-ins, so the whole file takes seconds:

- ``"embedded"`` resolves to a tiny random Llama (``hf_saerl.testing.tiny_llama``) instead of SmolLM2-135M:
  ``hf_saerl.models.embedded.default_model_spec`` is patched, the one place the name is resolved;
- a random 3-layer model solves no math, so ``MathVerifier.score`` gives a seeded reward per completion (a CRC of
  its text), so that the pass rates are not all 0 and the difficulty probe has something to fit;
- the Hub is out of reach: ``HfApi.create_repo`` / ``upload_folder`` record what would be uploaded.

Markers in the README: ``<!-- readme-test: skip (why) -->`` on the line before a block leaves that block out; a
command whose line says ``needs the Hub`` is left out of a bash block.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = "<!-- readme-test: skip"

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::FutureWarning", "ignore::sklearn.exceptions.ConvergenceWarning"
)


def blocks(language: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of each fenced block of ``language`` in the README, without the skipped ones."""
    lines = README.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        if lines[i].strip() == f"```{language}":
            start = i + 1
            end = next(j for j in range(start, len(lines)) if lines[j].strip() == "```")
            skipped = any(lines[k].strip().startswith(SKIP) for k in range(max(0, i - 2), i))
            if not skipped:
                found.append((start + 1, "\n".join(lines[start:end])))
            i = end
        i += 1
    return found


def commands(code: str) -> list[list[str]]:
    """The ``hf-saerl`` commands of a bash block (continuation lines joined, comments dropped), as argv lists."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        if "needs the Hub" in line:
            continue
        line = line.split(" #")[0].strip()
        if line.startswith("hf-saerl "):
            out.append(shlex.split(line)[1:])
    return out


def test_the_readme_has_the_blocks_this_file_runs():
    assert len(blocks("python")) >= 3 and any("hf-saerl fit" in code for _, code in blocks("bash"))
    assert any(SKIP in line for line in README.read_text().splitlines())  # the marker is used, so documented


@pytest.fixture
def readme_folder(tmp_path, monkeypatch, model_dir):
    import huggingface_hub

    import hf_saerl.models.embedded
    from hf_saerl.rollouts.verifiers import MathVerifier
    from hf_saerl.testing import tiny_sae

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        hf_saerl.models.embedded, "default_model_spec", lambda: {"model": str(model_dir), "gguf_file": None}
    )
    monkeypatch.setattr(
        MathVerifier,
        "score",
        lambda self, prompts, completions, columns: [float(zlib.crc32(c.encode()) % 3 == 0) for c in completions],
    )
    uploads: list[str] = []
    monkeypatch.setattr(
        huggingface_hub.HfApi, "create_repo", lambda api, repo_id, **kw: SimpleNamespace(repo_id=repo_id)
    )
    monkeypatch.setattr(
        huggingface_hub.HfApi, "upload_folder", lambda api, *, repo_id, folder_path, **kw: uploads.append(repo_id)
    )
    tiny_sae(d_in=32, d_sae=128, hook_name="blocks.1.hook_resid_post").save_model("my-sae")
    topics = ["sum", "product", "difference", "square"]
    rows = [
        {
            "prompt": f"What is the {topics[i % 4]} of {i} and {i % 5 + 1}? " + "Think. " * (i % 7),
            "answer": str(i + i % 5 + 1),
            "is_good": int(i % 3 != 0),
            "pass_rate": (i % 5) / 4,
            "category": topics[i % 4],
        }
        for i in range(48)
    ]
    for name, part in (("prompts.jsonl", rows), ("new_prompts.jsonl", rows[:12]), ("labelled.jsonl", rows)):
        Path(name).write_text("\n".join(json.dumps(r) for r in part) + "\n")
    # chosen answers are all digits and rejected ones all letters, so the audit has concepts to flag both ways
    pairs = [
        {
            "prompt": f"Add {i} and {i + 1}.",
            "chosen": " ".join(str((i * k) % 10) for k in range(12 + i % 5)),
            "rejected": "hmm maybe " + "xyz " * (3 + i % 4),
        }
        for i in range(40)
    ]
    Path("pairs.jsonl").write_text("\n".join(json.dumps(p) for p in pairs) + "\n")
    return uploads


def test_readme_blocks_run_as_written(readme_folder, capsys):
    from hf_saerl.cli import main

    namespace: dict = {"__name__": "readme"}
    for line, code in blocks("python"):
        try:
            exec(compile(code, f"README.md, block at line {line}", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"README.md's Python block at line {line} failed: {err!r}") from err
    assert "curated" in namespace and len(namespace["curated"]) > 0
    assert readme_folder == ["your-name/my-pipeline"]  # push_to_hub reached the (recorded) Hub
    cli = Path("cli")  # the commands write their own ./my-pipeline, next to the same data and SAE
    cli.mkdir()
    for name in ("prompts.jsonl", "new_prompts.jsonl", "labelled.jsonl", "my-sae"):
        Path(cli / name).symlink_to(Path(name).resolve())
    os.chdir(cli)
    for line, code in blocks("bash"):
        for argv in commands(code):
            if argv[0] == "train-sae":  # writes ./my-sae, which the blocks above already use
                argv = [a if a != "./my-sae" else "./my-sae-2" for a in argv] + ["--total-tokens", "2000"]
            code_ = main(argv)
            assert code_ == 0, (
                f"README.md line {line}: hf-saerl {' '.join(argv)} exited {code_}: {capsys.readouterr().err[-800:]}"
            )
    assert Path("my-pipeline/config.json").is_file() and Path("curated").is_dir() and Path("labelled").is_dir()
