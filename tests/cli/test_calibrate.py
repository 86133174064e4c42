"""``hf-saerl calibrate`` end to end on the tiny model: the table printed and saved, the configs named three ways,
and bad usage refused with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

from hf_saerl.cli import main


def test_calibrate_prints_and_saves_the_table(model_dir, tmp_path, capsys):
    out = tmp_path / "calibration"
    code = main(
        [
            "calibrate",
            "--model",
            str(model_dir),
            "--families",
            "gcd",
            "--config",
            "products:max_digits=1",
            "-n",
            "2",
            "--prompts",
            "2",
            "--max-new-tokens",
            "3",
            "--no-instruction",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| gcd | gcd | 2 x 2 |" in printed and "| products:max_digits=1 | products | 2 x 2 |" in printed
    saved = json.loads((out / "calibration.json").read_text())
    assert [c["name"] for c in saved["configs"]] == ["gcd", "products:max_digits=1"]
    assert saved["settings"]["labeller"]["n"] == 2 and saved["settings"]["labeller"]["instruction"] is None
    assert saved["settings"]["labeller"]["sampling"]["max_new_tokens"] == 3
    rows = [r for c in saved["configs"] for r in c["rows"]]
    assert len(rows) == 4 and all(r["k"] == 2 and 0 <= r["n_correct"] <= 2 for r in rows)
    for c in saved["configs"]:  # the table's mean is the mean of its rows
        assert abs(c["mean_pass_rate"] - sum(r["n_correct"] / 2 for r in c["rows"]) / 2) < 1e-9
    assert (out / "calibration.md").exists()


def test_calibrate_names_the_pilot_preset(tmp_path):
    from hf_saerl.cli import build_parser
    from hf_saerl.cli.calibrate import task_configs
    from hf_saerl.rollouts.calibration import PILOT_CONFIGS

    args = build_parser().parse_args(["calibrate", "--model", "m", "--preset", "pilot", "--families", "lcm"])
    assert [t.name for t in task_configs(args)] == [t.name for t in PILOT_CONFIGS] + ["lcm"]


def test_calibrate_without_configs_is_a_usage_error(model_dir, capsys):
    assert main(["calibrate", "--model", str(model_dir)]) == 2
    assert "--families" in capsys.readouterr().err


def test_calibrate_help_is_light():
    code = (
        "import sys, contextlib, io\nfrom hf_saerl.cli import build_parser\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    build_parser().parse_args(['calibrate', '--help'])\n"
        "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'reasoning_gym') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
