"""``hf-saerl train-sae`` end to end on the tiny model: trains, saves a sae-lens folder the encoder accepts,
hits the cache on a second run, and refuses a missing text column with exit code 2."""

from __future__ import annotations

import json

from hf_saerl import SAEEncoder, load_sae
from hf_saerl.cli import main

TEXTS = [f"Problem {i}: find all integers n with n^2 + {i} dividing n^3 + {2 * i}." for i in range(40)]


def _args(model_dir, data, out):
    return [
        "train-sae",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--text-column",
        "prompt",
        "--d-sae",
        "64",
        "-k",
        "4",
        "--total-tokens",
        "4096",
        "--max-activation-tokens",
        "800",
        "--max-length",
        "48",
        "--output",
        str(out),
    ]


def test_train_sae_cli(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_SAERL_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "prompts.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": t}) for t in TEXTS))

    assert main(_args(model_dir, data, tmp_path / "sae")) == 0
    first = capsys.readouterr().out
    stats = json.loads(first[: first.rindex("}") + 1])
    assert 0 < stats["explained_variance"] <= 1 and stats["cache_hit"] is False
    sae = load_sae(str(tmp_path / "sae"))
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (32, 64)
    assert sae.cfg.metadata.hook_name == "blocks.1.hook_resid_post"  # the middle of 3 layers
    encoder = SAEEncoder(str(model_dir), str(tmp_path / "sae"))
    assert encoder.encode(TEXTS[:2]).shape == (2, 64)

    assert main(_args(model_dir, data, tmp_path / "sae2")) == 0
    again = capsys.readouterr().out
    assert json.loads(again[: again.rindex("}") + 1])["cache_hit"] is True

    bad = _args(model_dir, data, tmp_path / "sae3")
    bad[bad.index("prompt")] = "question"
    assert main(bad) == 1  # a wrong column exits 1 in every command
    assert "--text-column question: no such column" in capsys.readouterr().err
