"""``hf-saerl label`` end to end on the tiny model: labels every row or a budget (saving the rest apart), takes a
TRL-style reward function by import path, and refuses a missing answer column (exit 1) and bad usage (exit 2)."""

from __future__ import annotations

import json

from datasets import load_from_disk

from hf_saerl.cli import main

PROMPTS = [f"What is {i} + {i}?" for i in range(6)]


def _data(tmp_path, extra=None):
    path = tmp_path / "prompts.jsonl"
    rows = [{"prompt": p, "answer": str(2 * i), "cluster_id": i % 2, **(extra or {})} for i, p in enumerate(PROMPTS)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def _args(model_dir, data, out, *extra):
    return [
        "label",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "-n",
        "2",
        "--max-new-tokens",
        "3",
        "--output",
        str(out),
        *extra,
    ]


def _summary(text):
    return json.loads(text[: text.rindex("}") + 1])


def test_label_every_row(model_dir, tmp_path, capsys):
    assert main(_args(model_dir, _data(tmp_path), tmp_path / "out", "--keep-completions")) == 0
    summary = _summary(capsys.readouterr().out)
    assert summary["rows_labelled"] == 6 and summary["completions"] == 12
    labelled = load_from_disk(str(tmp_path / "out"))
    assert {"pass_rate", "n_samples", "n_correct", "n_empty", "completions"} <= set(labelled.column_names)
    assert labelled["n_samples"][:] == [2] * 6


def test_label_a_stratified_budget_with_a_reward_function(model_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        "def always(prompts, completions, **kwargs):\n    return [1.0] * len(completions)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(
        _args(
            model_dir,
            _data(tmp_path),
            tmp_path / "out",
            "--budget",
            "4",
            "--strategy",
            "stratified",
            "--rest-output",
            str(tmp_path / "rest"),
            "--reward-function",
            "my_rewards:always",
        )
    )
    assert code == 0
    summary = _summary(capsys.readouterr().out)
    assert (summary["rows_labelled"], summary["rows_unlabelled"]) == (4, 2)
    labelled, rest = load_from_disk(str(tmp_path / "out")), load_from_disk(str(tmp_path / "rest"))
    assert sorted(labelled["cluster_id"]) == [0, 0, 1, 1] and "pass_rate" not in rest.column_names
    # every non-empty completion is rewarded 1.0: the pass rate counts them
    assert [round(p * 2) for p in labelled["pass_rate"]] == [2 - e for e in labelled["n_empty"]]


def test_label_refuses_bad_input(model_dir, tmp_path, capsys):
    data = _data(tmp_path)
    assert main(_args(model_dir, data, tmp_path / "o1", "--answer-column", "solution")) == 1
    assert "--answer-column solution: no such column" in capsys.readouterr().err
    assert main(_args(model_dir, data, tmp_path / "o2", "--budget", "2.5")) == 2
    assert "--budget 2.5" in capsys.readouterr().err
    assert main(_args(model_dir, data, tmp_path / "o3", "--rest-output", str(tmp_path / "r"))) == 2
    assert "--rest-output needs --budget" in capsys.readouterr().err
    assert main(_args(model_dir, data, tmp_path / "o4", "--reward-function", "nowhere")) == 2
    assert "MODULE:NAME" in capsys.readouterr().err
    assert (
        main(
            _args(
                model_dir,
                data,
                tmp_path / "o5",
                "--budget",
                "3",
                "--strategy",
                "stratified",
                "--cluster-column",
                "topic",
            )
        )
        == 1
    )
    assert "needs the cluster column 'topic'" in capsys.readouterr().err
