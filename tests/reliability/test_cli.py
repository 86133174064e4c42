"""Issue 13, "nothing silent", for the command line: exit 0 on success, 1 when the job fails, 2 on bad usage, and
always one line naming the problem, never a traceback; no output is written that ``load_from_disk`` cannot read.
"""

from __future__ import annotations

import json
import shutil

import pytest
from datasets import Dataset, load_from_disk

from hf_saerl.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning",
                                        "ignore::sklearn.exceptions.ConvergenceWarning")


def run(argv, capsys):
    """``(exit code, the hf-saerl lines on stderr)``; argparse's own errors exit through SystemExit(2)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.startswith("hf-saerl ")]


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory):
    rows = [{"text": ("Find n such that " if i % 2 else "lorem ipsum !! ") + "1" * (1 + i % 6), "good": bool(i % 2)}
            for i in range(24)]
    path = tmp_path_factory.mktemp("data") / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def pipeline_dir(model_dir, sae_dir, jsonl, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "pipeline"
    assert main(["fit", "--model", str(model_dir), "--sae", str(sae_dir), "--data", str(jsonl), "--quality-label",
                 "good", "--cv", "0", "--top-k", "8", "--output", str(out)]) == 0
    return out


def fit_args(model_dir, sae_dir, data, out, *extra):
    return ["fit", "--model", model_dir, "--sae", sae_dir, "--data", data, "--quality-label", "good", "--cv", "0",
            "--top-k", "8", "--output", out, *extra]


# ---------------------------------------------------------------------------------- usage errors: exit 2
@pytest.mark.parametrize("flag, value", [("--top-k", "0"), ("--batch-size", "0"), ("--max-length", "1"),
                                         ("--quality-threshold", "nan"), ("--quality-threshold", "inf"),
                                         ("--cv", "-1")])
def test_fit_out_of_range_argument_is_a_usage_error(flag, value, model_dir, sae_dir, jsonl, tmp_path, capsys):
    code, lines = run(fit_args(model_dir, sae_dir, jsonl, tmp_path / "out", flag, value), capsys)
    assert code == 2 and len(lines) == 1 and f"argument {flag}" in lines[0] and repr(value) in lines[0]
    assert not (tmp_path / "out").exists()


def test_augment_nan_threshold_is_a_usage_error(pipeline_dir, jsonl, tmp_path, capsys):
    code, lines = run(["augment", "--pipeline", pipeline_dir, "--data", jsonl, "--quality-threshold", "nan",
                       "-o", tmp_path / "out"], capsys)
    assert code == 2 and "expected a finite number, got 'nan'" in lines[0]
    assert not (tmp_path / "out").exists()


def test_augment_threshold_outside_a_classifiers_range_is_a_usage_error(pipeline_dir, jsonl, tmp_path, capsys):
    code, lines = run(["augment", "--pipeline", pipeline_dir, "--data", jsonl, "--quality-threshold", "1.5",
                       "-o", tmp_path / "out"], capsys)
    assert code == 2 and len(lines) == 1 and r"--quality-threshold=1.5 is outside [0, 1]" in lines[0]
    assert not (tmp_path / "out").exists()


def test_fit_threshold_outside_a_classifiers_range_saves_nothing(model_dir, sae_dir, jsonl, tmp_path, capsys):
    code, lines = run(fit_args(model_dir, sae_dir, jsonl, tmp_path / "out", "--quality-threshold", "2"), capsys)
    assert code == 2 and "--quality-threshold=2.0 is outside [0, 1]" in lines[0]
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_refused_and_kept(pipeline_dir, jsonl, tmp_path, capsys):
    target = tmp_path / "out.txt"
    target.write_text("mine")
    code, lines = run(["augment", "--pipeline", pipeline_dir, "--data", jsonl, "-o", target], capsys)
    assert code == 2 and "is a file" in lines[0] and target.read_text() == "mine"


def test_output_over_the_input_is_refused_and_the_input_kept(pipeline_dir, jsonl, tmp_path, capsys):
    source = tmp_path / "saved"
    Dataset.from_json(str(jsonl)).save_to_disk(str(source))
    code, lines = run(["augment", "--pipeline", pipeline_dir, "--data", source, "-o", source], capsys)
    assert code == 2 and "would overwrite the input data" in lines[0]
    assert len(load_from_disk(str(source))) == 24


def test_output_into_an_unrelated_folder_is_refused_and_kept(pipeline_dir, jsonl, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.md").write_text("keep me")
    code, lines = run(["augment", "--pipeline", pipeline_dir, "--data", jsonl, "-o", folder], capsys)
    assert code == 2 and "non-empty folder that holds no saved dataset" in lines[0]
    assert sorted(p.name for p in folder.iterdir()) == ["notes.md"]


# ---------------------------------------------------------------------------------- failed jobs: exit 1
def test_corrupt_jsonl_is_one_line_naming_the_file(model_dir, sae_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "good": true}\n{"text": \n')
    code, lines = run(fit_args(model_dir, sae_dir, bad, tmp_path / "out"), capsys)
    assert code == 1 and len(lines) == 1 and "bad.jsonl" in lines[0] and "JSON parse error" in lines[0]
    assert not (tmp_path / "out").exists()


def test_empty_data_file_is_one_line(model_dir, sae_dir, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, lines = run(fit_args(model_dir, sae_dir, empty, tmp_path / "out"), capsys)
    assert code == 1 and "empty.jsonl" in lines[0] and "empty (0 bytes)" in lines[0]


def test_blank_data_file_is_one_line_not_a_stop_iteration(model_dir, sae_dir, tmp_path, capsys):
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    code, lines = run(fit_args(model_dir, sae_dir, blank, tmp_path / "out"), capsys)
    assert code == 1 and len(lines) == 1 and "blank.jsonl" in lines[0] and "no rows" in lines[0]


def test_header_only_csv_has_no_rows(model_dir, sae_dir, tmp_path, capsys):
    csv = tmp_path / "head.csv"
    csv.write_text("text,good\n")
    code, lines = run(fit_args(model_dir, sae_dir, csv, tmp_path / "out"), capsys)
    assert code == 1 and len(lines) == 1 and "head.csv" in lines[0] and "no rows" in lines[0]


def test_tampered_bundle_is_one_line_and_writes_nothing(pipeline_dir, jsonl, tmp_path, capsys):
    copy = shutil.copytree(pipeline_dir, tmp_path / "pipe")
    path = copy / "quality" / "quality_probe.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-2] ^= 0x04
    path.write_bytes(bytes(raw))
    code, lines = run(["augment", "--pipeline", copy, "--data", jsonl, "-o", tmp_path / "out"], capsys)
    assert code == 1 and len(lines) == 1 and "quality_probe.safetensors" in lines[0] and "checksum" in lines[0]
    assert not (tmp_path / "out").exists()


def test_inspect_of_a_missing_folder_is_one_line(tmp_path, capsys):
    code, lines = run(["inspect", tmp_path / "nope"], capsys)
    assert code == 1 and len(lines) == 1 and "nope" in lines[0]


# ---------------------------------------------------------------------------------- success: exit 0
def test_augment_output_reads_back_and_leaves_no_staging(pipeline_dir, jsonl, tmp_path, capsys):
    out = tmp_path / "out"
    code, lines = run(["augment", "--pipeline", pipeline_dir, "--data", jsonl, "-o", out], capsys)
    assert code == 0 and lines == []
    saved = load_from_disk(str(out))["train"]
    assert len(saved) == 24 and "quality" in saved.column_names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # saving again over its own earlier output replaces it
    code, _ = run(["augment", "--pipeline", pipeline_dir, "--data", jsonl, "-o", out], capsys)
    assert code == 0 and len(load_from_disk(str(out))["train"]) == 24
