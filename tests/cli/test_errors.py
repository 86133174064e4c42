"""The command line's error contract across commands (issues 13 and 25): exit 0 on success, 1 when the job fails,
2 on bad usage, and always one line naming the problem, never a traceback; no output is written that
``load_from_disk`` cannot read, and no non-empty output folder is replaced without --overwrite.
"""

from __future__ import annotations

import json
import shutil

import pytest
from datasets import Dataset, load_from_disk

from hf_saerl.cli import main

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::FutureWarning", "ignore::sklearn.exceptions.ConvergenceWarning"
)


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
    rows = [
        {"text": ("Find n such that " if i % 2 else "lorem ipsum !! ") + "1" * (1 + i % 6), "good": bool(i % 2)}
        for i in range(24)
    ]
    path = tmp_path_factory.mktemp("data") / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def pipeline_dir(model_dir, sae_dir, jsonl, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "pipeline"
    assert (
        main(
            [
                "fit",
                "--model",
                str(model_dir),
                "--sae",
                str(sae_dir),
                "--data",
                str(jsonl),
                "--quality-label",
                "good",
                "--cv",
                "0",
                "--top-k",
                "8",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    return out


def fit_args(model_dir, sae_dir, data, out, *extra):
    return [
        "fit",
        "--model",
        model_dir,
        "--sae",
        sae_dir,
        "--data",
        data,
        "--quality-label",
        "good",
        "--cv",
        "0",
        "--top-k",
        "8",
        "--output",
        out,
        *extra,
    ]


# ---------------------------------------------------------------------------------- usage errors: exit 2
@pytest.mark.parametrize(
    "flag, value",
    [
        ("--top-k", "0"),
        ("--batch-size", "0"),
        ("--max-length", "1"),
        ("--quality-threshold", "nan"),
        ("--quality-threshold", "inf"),
        ("--cv", "-1"),
    ],
)
def test_fit_out_of_range_argument_is_a_usage_error(flag, value, model_dir, sae_dir, jsonl, tmp_path, capsys):
    code, lines = run(fit_args(model_dir, sae_dir, jsonl, tmp_path / "out", flag, value), capsys)
    assert code == 2 and len(lines) == 1 and f"argument {flag}" in lines[0] and repr(value) in lines[0]
    assert not (tmp_path / "out").exists()


def test_augment_nan_threshold_is_a_usage_error(pipeline_dir, jsonl, tmp_path, capsys):
    code, lines = run(
        ["augment", "--pipeline", pipeline_dir, "--data", jsonl, "--quality-threshold", "nan", "-o", tmp_path / "out"],
        capsys,
    )
    assert code == 2 and "expected a finite number, got 'nan'" in lines[0]
    assert not (tmp_path / "out").exists()


def test_augment_threshold_outside_a_classifiers_range_is_a_usage_error(pipeline_dir, jsonl, tmp_path, capsys):
    code, lines = run(
        ["augment", "--pipeline", pipeline_dir, "--data", jsonl, "--quality-threshold", "1.5", "-o", tmp_path / "out"],
        capsys,
    )
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
    assert code == 2 and "already exists and is not empty" in lines[0] and "--overwrite" in lines[0]
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
    # saving again over its own earlier output is refused, and replaces it with --overwrite
    code, lines = run(["augment", "--pipeline", pipeline_dir, "--data", jsonl, "-o", out], capsys)
    assert code == 2 and "--overwrite" in lines[0]
    code, _ = run(
        ["augment", "--pipeline", pipeline_dir, "--data", jsonl, "--no-filter", "-o", out, "--overwrite"], capsys
    )
    assert code == 0 and len(load_from_disk(str(out))["train"]) == 24
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ---------------------------------------------------------------------------------- issue 25: a newcomer's mistakes
@pytest.fixture
def occupied(tmp_path):
    folder = tmp_path / "occupied"
    folder.mkdir()
    (folder / "labels.txt").write_text("ten labelled rows")
    return folder


def _no_model(monkeypatch):
    """Make any model load fail loudly: the checks under test must come before it."""
    import transformers

    def refuse(*a, **k):
        raise AssertionError("a model was loaded before a check that needs none")

    for auto in (transformers.AutoModelForCausalLM, transformers.AutoConfig, transformers.AutoTokenizer):
        monkeypatch.setattr(auto, "from_pretrained", refuse)


@pytest.mark.parametrize("command", ["label", "train-sae", "fit", "augment"])
def test_a_misspelt_data_file_is_no_such_file_not_a_hub_error(
    command, model_dir, sae_dir, pipeline_dir, jsonl, tmp_path, capsys, monkeypatch
):
    _no_model(monkeypatch)
    (tmp_path / "prompts.jsonl").write_text("")
    model = ["--model", model_dir]
    argv = {
        "label": ["label", *model],
        "train-sae": ["train-sae", *model],
        "augment": ["augment", "--pipeline", pipeline_dir],
        "fit": ["fit", *model, "--sae", sae_dir, "--quality-label", "good"],
    }[command]
    code, lines = run([*argv, "--data", tmp_path / "prompt.jsonl", "-o", tmp_path / "out"], capsys)
    assert code == 1 and len(lines) == 1
    assert "no such file" in lines[0] and "prompt.jsonl" in lines[0] and "Hub" not in lines[0]
    assert "did you mean" in lines[0] and "prompts.jsonl" in lines[0]


@pytest.mark.parametrize(
    "model, words",
    [
        ("embeded", ["'embeded'", "did you mean 'embedded'"]),
        ("/data/no_such_model", ["'/data/no_such_model'", "no such folder", "'embedded'"]),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", ["offline", "'embedded'"]),
    ],
)
@pytest.mark.parametrize("command", ["label", "train-sae", "fit"])
def test_a_model_that_cannot_be_found_is_one_line_naming_it(
    command, model, words, sae_dir, jsonl, tmp_path, capsys, monkeypatch
):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    argv = {
        "label": ["label"],
        "train-sae": ["train-sae"],
        "fit": ["fit", "--sae", sae_dir, "--quality-label", "good"],
    }[command]
    code, lines = run([*argv, "--model", model, "--data", jsonl, "-o", tmp_path / "out"], capsys)
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"hf-saerl {command}: error: --model ")
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["train-sae", "--text-column", "txt"], "--text-column txt"),
        (["fit", "--text-column", "txt", "--quality-label", "good"], "--text-column txt"),
        (["fit", "--quality-label", "godo"], "--quality-label godo"),
        (["fit", "--difficulty-label", "pass_rate"], "--difficulty-label pass_rate"),
        (["label", "--prompt-column", "txt"], "--prompt-column txt"),
        (["label", "--prompt-column", "text", "--answer-column", "solution"], "--answer-column solution"),
        (["label", "--template", "{question}: {text}"], "--template ({question}) question"),
    ],
)
def test_a_wrong_column_exits_1_in_every_command_naming_the_flag(
    argv, flag, model_dir, sae_dir, jsonl, tmp_path, capsys, monkeypatch
):
    _no_model(monkeypatch)
    extra = ["--sae", sae_dir] if argv[0] == "fit" else []
    code, lines = run([*argv, *extra, "--model", model_dir, "--data", jsonl, "-o", tmp_path / "out"], capsys)
    assert code == 1 and len(lines) == 1 and f"{flag}: no such column" in lines[0], lines
    assert "'text'" in lines[0] and "=" not in lines[0].split("error:")[1]  # the flags, not Python kwargs


@pytest.mark.parametrize(
    "values, words",
    [
        ([0.5, float("inf"), 0.2, 0.1], ["--difficulty-label score", "infinite", "rows [1]"]),
        ([0.0, 0.0, 0.0, 0.0], ["--difficulty-label score", "all 4 labels are 0.0", "two distinct values", "--budget"]),
    ],
)
def test_fit_refuses_bad_labels_before_loading_the_model(
    values, words, model_dir, sae_dir, tmp_path, capsys, monkeypatch
):
    _no_model(monkeypatch)
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps({"text": f"t{i}", "score": v}) for i, v in enumerate(values)))
    code, lines = run(
        [
            "fit",
            "--model",
            model_dir,
            "--sae",
            sae_dir,
            "--data",
            data,
            "--difficulty-label",
            "score",
            "-o",
            tmp_path / "out",
        ],
        capsys,
    )
    assert code == 1 and len(lines) == 1
    for word in words:
        assert word in lines[0]


def test_fit_refuses_a_classifier_threshold_before_loading_the_model(
    model_dir, sae_dir, jsonl, tmp_path, capsys, monkeypatch
):
    _no_model(monkeypatch)
    code, lines = run(fit_args(model_dir, sae_dir, jsonl, tmp_path / "out", "--quality-threshold", "1.5"), capsys)
    assert code == 2 and "--quality-threshold=1.5 is outside [0, 1]" in lines[0]


@pytest.mark.parametrize("command", ["label", "train-sae", "fit", "augment", "demo"])
def test_an_existing_non_empty_output_is_refused_before_any_model_loads(
    command, occupied, model_dir, sae_dir, pipeline_dir, jsonl, capsys, monkeypatch
):
    _no_model(monkeypatch)
    argv = {
        "label": ["label", "--model", model_dir, "--data", jsonl, "-o", occupied],
        "train-sae": ["train-sae", "--model", model_dir, "--data", jsonl, "-o", occupied],
        "fit": fit_args(model_dir, sae_dir, jsonl, occupied),
        "augment": ["augment", "--pipeline", pipeline_dir, "--data", jsonl, "-o", occupied],
        "demo": ["demo", "--ci", "--output-dir", occupied],
    }[command]
    code, lines = run(argv, capsys)
    assert code == 2 and len(lines) == 1 and str(occupied) in lines[0] and "--overwrite" in lines[0]
    assert sorted(p.name for p in occupied.iterdir()) == ["labels.txt"]


def test_label_rest_output_is_refused_too(occupied, model_dir, jsonl, tmp_path, capsys, monkeypatch):
    _no_model(monkeypatch)
    code, lines = run(
        [
            "label",
            "--model",
            model_dir,
            "--data",
            jsonl,
            "--budget",
            "2",
            "-o",
            tmp_path / "new",
            "--rest-output",
            occupied,
        ],
        capsys,
    )
    assert code == 2 and "--rest-output" in lines[0] and "--overwrite" in lines[0]


def test_label_overwrite_replaces_the_folder(occupied, model_dir, jsonl, tmp_path, capsys, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        "def always(prompts, completions, **kw):\n    return [1.0] * len(completions)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, lines = run(
        [
            "label",
            "--model",
            model_dir,
            "--data",
            jsonl,
            "--prompt-column",
            "text",
            "--reward-function",
            "my_rewards:always",
            "-n",
            "1",
            "--max-new-tokens",
            "2",
            "--budget",
            "3",
            "-o",
            occupied,
            "--overwrite",
        ],
        capsys,
    )
    assert code == 0, lines
    assert len(load_from_disk(str(occupied))) == 3 and not (occupied / "labels.txt").exists()


def test_fit_overwrite_replaces_the_folder(occupied, model_dir, sae_dir, jsonl, capsys):
    code, _ = run([*fit_args(model_dir, sae_dir, jsonl, occupied), "--overwrite"], capsys)
    assert code == 0 and (occupied / "config.json").is_file() and not (occupied / "labels.txt").exists()


def test_label_stratified_without_a_cluster_column_says_how_to_add_it(model_dir, jsonl, tmp_path, capsys, monkeypatch):
    _no_model(monkeypatch)
    code, lines = run(
        [
            "label",
            "--model",
            model_dir,
            "--data",
            jsonl,
            "--prompt-column",
            "text",
            "--budget",
            "0.5",
            "--strategy",
            "stratified",
            "--answer-column",
            "good",
            "-o",
            tmp_path / "out",
        ],
        capsys,
    )
    assert code == 1 and "cluster_id" in lines[0] and "hf-saerl augment" in lines[0] and "--strategy random" in lines[0]


def test_augment_that_keeps_no_row_exits_1_and_writes_nothing(pipeline_dir, jsonl, tmp_path, capsys):
    code, lines = run(
        ["augment", "--pipeline", pipeline_dir, "--data", jsonl, "--quality-threshold", "1.0", "-o", tmp_path / "out"],
        capsys,
    )
    assert code == 1 and len(lines) == 1 and "keeps no row of 24" in lines[0] and "--no-filter" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_augment_takes_the_model_and_its_gguf_file(pipeline_dir, model_dir, jsonl, tmp_path, capsys, monkeypatch):
    code, _ = run(
        [
            "augment",
            "--pipeline",
            pipeline_dir,
            "--model",
            model_dir,
            "--data",
            jsonl,
            "--no-filter",
            "-o",
            tmp_path / "out",
        ],
        capsys,
    )
    assert code == 0 and len(load_from_disk(str(tmp_path / "out"))["train"]) == 24
    code, lines = run(
        ["augment", "--pipeline", pipeline_dir, "--gguf-file", "m.gguf", "--data", jsonl, "-o", tmp_path / "o2"], capsys
    )
    assert code == 2 and "--model" in lines[0]
    code, lines = run(
        [
            "augment",
            "--pipeline",
            pipeline_dir,
            "--model",
            model_dir,
            "--gguf-file",
            "m.gguf",
            "--data",
            jsonl,
            "-o",
            tmp_path / "o3",
        ],
        capsys,
    )
    assert code == 1 and "no GGUF file 'm.gguf'" in lines[0]


def test_push_offline_is_one_line(pipeline_dir, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    code, lines = run(["push", pipeline_dir, "me/pipe"], capsys)
    assert code == 1 and len(lines) == 1 and "HF_HUB_OFFLINE" in lines[0]
