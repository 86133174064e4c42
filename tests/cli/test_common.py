"""The CLI's error contract: library refusals, data errors and missing files exit 1 with one line; usage errors
exit 2; anything else is a bug, one line too (exit 1), and keeps its traceback under --debug."""

import argparse

import pytest
from datasets.exceptions import DatasetGenerationError, DatasetNotFoundError

import hf_saerl.cli.inspect
from hf_saerl.cli import main
from hf_saerl.cli.common import finite_float, guard, hub_repo_id, positive_int
from hf_saerl.errors import BundleError, MissingColumnError, UsageError, WidthMismatchError


def _raising(err):
    def run(args):
        raise err

    return run


@pytest.mark.parametrize(
    "err, code",
    [
        (BundleError("config.json is corrupt"), 1),
        (WidthMismatchError("d_sae=64 vs d_sae=128"), 1),
        (MissingColumnError("no column 'good'"), 1),
        (DatasetGenerationError("An error occurred while generating the dataset"), 1),
        (DatasetNotFoundError("Dataset 'me/nothing' doesn't exist on the Hub"), 1),
        (FileNotFoundError("no such folder"), 1),
        (UsageError("pass --output"), 2),
    ],
)
def test_refusals_print_one_line_and_exit(err, code, capsys):
    assert guard(_raising(err))(argparse.Namespace(command="fit")) == code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hf-saerl fit: ") and str(err) in lines[0]
    assert "Traceback" not in lines[0]


@pytest.mark.parametrize(
    "err", [TypeError("unexpected keyword"), OSError("disk full"), ValueError("a bug"), KeyError("a bug")]
)
def test_bugs_are_one_line_and_keep_their_traceback_under_debug(err, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(hf_saerl.cli.inspect, "run", _raising(err))
    assert main(["inspect", str(tmp_path)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"unexpected {type(err).__name__}" in lines[0] and "--debug" in lines[0]
    with pytest.raises(type(err)):
        main(["inspect", str(tmp_path), "--debug"])
    with pytest.raises(type(err)):
        main(["--debug", "inspect", str(tmp_path)])


def test_debug_prints_the_traceback_of_a_refusal(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(hf_saerl.cli.inspect, "run", _raising(BundleError("tampered")))
    assert main(["inspect", str(tmp_path), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1] == "hf-saerl inspect: error: tampered"


def test_connection_errors_are_one_line_with_the_way_out(capsys):
    assert guard(_raising(ConnectionError("Couldn't reach 'x' on the Hub")))(argparse.Namespace(command="fit")) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "HF_HUB_OFFLINE" in lines[0] and "local files" in lines[0]


def test_main_applies_the_contract_to_every_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(hf_saerl.cli.inspect, "run", _raising(BundleError("tampered")))
    assert main(["inspect", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == "hf-saerl inspect: error: tampered"


def test_malformed_data_file_exits_1(model_dir, sae_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "good": true}\n{not json\n')
    assert (
        main(
            [
                "fit",
                "--model",
                str(model_dir),
                "--sae",
                str(sae_dir),
                "--data",
                str(bad),
                "--quality-label",
                "good",
                "--output",
                str(tmp_path / "p"),
            ]
        )
        == 1
    )
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the datasets progress bar
    assert (
        last.startswith("hf-saerl fit: error: could not read [") and "bad.jsonl" in last and "JSON parse error" in last
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "--top-k", "0"],
        ["fit", "--top-k", "many"],
        ["fit", "--max-length", "1"],
        ["fit", "--batch-size", "-3"],
        ["fit", "--cv", "-1"],
        ["fit", "--quality-threshold", "nan"],
        ["fit", "--push-to", "not a repo id!"],
        ["augment", "--num-proc", "0"],
        ["augment", "--quality-threshold", "inf"],
        ["train-sae", "--d-sae", "0"],
        ["train-sae", "--lr", "0"],
    ],
)
def test_out_of_range_arguments_are_usage_errors(argv, capsys):
    command, rest = argv[0], argv[1:]
    required = {
        "fit": ["--model", "m", "--sae", "s", "--data", "d.jsonl"],
        "augment": ["--pipeline", "p", "--data", "d.jsonl"],
        "train-sae": ["--model", "m", "--data", "d.jsonl", "--output", "o"],
    }[command]
    with pytest.raises(SystemExit) as exit_info:
        main([command, *required, *rest])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {rest[0]}: expected" in err


def test_push_refuses_a_bad_repo_id(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["push", str(tmp_path), "a/b/c"])
    assert exit_info.value.code == 2


def test_argument_types():
    assert positive_int("4") == 4 and finite_float("-0.5") == -0.5 and hub_repo_id("me/pipe") == "me/pipe"
    for parse, text in ((positive_int, "0"), (finite_float, "nan"), (hub_repo_id, "me//x")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_every_command_module_registers(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    for command in ("demo", "train-sae", "label", "fit", "augment", "push", "inspect"):
        assert f"    {command} " in listed
