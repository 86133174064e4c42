"""The fit / augment / push / inspect subcommands, end to end on the tiny model, offline."""

import json
import shutil

import numpy as np
import pytest
from datasets import Dataset, DatasetDict, load_from_disk
from huggingface_hub import HfApi

from hf_saerl.cli import main
from hf_saerl.pipeline import SAERLPipeline

# the CLI's difficulty probe searches alpha with sklearn defaults; tiny data does not always converge
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory):
    rows = []
    for i in range(30):
        good = bool(i % 2)
        rows.append(
            {
                "text": ("Find n such that " if good else "lorem ipsum !! ") + "1" * (1 + i % 6),
                "good": good,
                "pass_rate": (i % 4) / 3,
                "topic": "a" if i % 3 else "b",
            }
        )
    path = tmp_path_factory.mktemp("data") / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def fitted_dir(model_dir, sae_dir, jsonl, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "pipeline"
    code = main(
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
            "--difficulty-label",
            "pass_rate",
            "--clusters",
            "2",
            "--cluster-reference",
            "topic",
            "--cv",
            "3",
            "--top-k",
            "8",
            "--quality-threshold",
            "0.5",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_fit_writes_a_loadable_bundle(fitted_dir, model_dir):
    config = json.loads((fitted_dir / "config.json").read_text())
    assert config["model"]["id"] == str(model_dir)
    assert set(config["estimators"]) == {"quality", "difficulty", "clusterer"}
    assert config["top_k"] == 8 and config["quality_threshold"] == 0.5
    assert config["fit"]["n_rows"] == 30 and config["fit"]["cluster_reference"] == "topic"
    pipe = SAERLPipeline.from_pretrained(fitted_dir)
    assert pipe.quality.metrics_["cv_folds"] == 3 and pipe.clusterer.n_clusters_ == 2


def test_augment_to_disk_matches_the_python_api(fitted_dir, jsonl, tmp_path, capsys):
    out = tmp_path / "augmented"
    assert (
        main(["augment", "--pipeline", str(fitted_dir), "--data", str(jsonl), "--split", "train", "--output", str(out)])
        == 0
    )
    saved = load_from_disk(str(out))
    expected = SAERLPipeline.from_pretrained(fitted_dir)(Dataset.from_json(str(jsonl)))
    assert saved.column_names == expected.column_names and 0 < len(saved) < 30
    for col in ("quality", "difficulty", "cluster_id", "cluster_distance"):
        np.testing.assert_array_equal(np.asarray(saved[col]), np.asarray(expected[col]))
    assert f"{len(saved)} rows, dropped {30 - len(saved)} with quality < 0.5" in capsys.readouterr().out


def test_augment_no_filter_and_saved_dataset_input(fitted_dir, jsonl, tmp_path):
    source = tmp_path / "source"
    DatasetDict({"train": Dataset.from_json(str(jsonl))}).save_to_disk(str(source))
    out = tmp_path / "all"
    assert (
        main(["augment", "--pipeline", str(fitted_dir), "--data", str(source), "--no-filter", "--output", str(out)])
        == 0
    )
    saved = load_from_disk(str(out))
    assert isinstance(saved, DatasetDict) and len(saved["train"]) == 30 and "quality" in saved["train"].column_names


def test_inspect_prints_card_and_config(fitted_dir, capsys):
    assert main(["inspect", str(fitted_dir)]) == 0
    printed = capsys.readouterr().out
    assert "# hf_saerl SAERL pipeline" in printed and "===== config.json =====" in printed
    assert main(["inspect", str(fitted_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["d_sae"] == 128


def test_push_uploads_the_checked_folder(fitted_dir, tmp_path, monkeypatch):
    uploaded = {}

    def create_repo(api, repo_id, **kw):
        uploaded["private"] = kw.get("private")

    def upload_folder(api, *, repo_id, folder_path, **kw):
        uploaded["repo_id"] = repo_id
        shutil.copytree(folder_path, tmp_path / "remote")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    assert main(["push", str(fitted_dir), "me/pipe", "--private"]) == 0
    assert uploaded["repo_id"] == "me/pipe" and uploaded["private"] is True
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == sorted(p.name for p in fitted_dir.iterdir())


def test_augment_push_to_hub(fitted_dir, jsonl, monkeypatch):
    captured = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: None)
    monkeypatch.setattr(HfApi, "upload_file", lambda api, **kw: captured.setdefault("card", kw["path_or_fileobj"]))
    monkeypatch.setattr(DatasetDict, "push_to_hub", lambda ds, repo_id, **kw: captured.setdefault("data", ds))
    assert main(["augment", "--pipeline", str(fitted_dir), "--data", str(jsonl), "--push-to", "me/curated"]) == 0
    card = captured["card"].decode()
    assert str(fitted_dir) in card and "quality >= 0.5" in card
    assert "quality" in captured["data"]["train"].column_names


def test_job_failures_exit_1(fitted_dir, jsonl, model_dir, sae_dir, tmp_path, capsys):
    broken = shutil.copytree(fitted_dir, tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    assert main(["augment", "--pipeline", str(broken), "--data", str(jsonl), "--output", str(tmp_path / "o")]) == 1
    assert "config.json" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing")]) == 1
    assert main(["push", str(tmp_path / "missing"), "me/x"]) == 1
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
                "no_such_column",
                "--output",
                str(tmp_path / "p"),
            ]
        )
        == 1
    )
    assert "no_such_column" in capsys.readouterr().err


def test_usage_errors_exit_2(fitted_dir, jsonl, model_dir, sae_dir, tmp_path, capsys):
    common = ["--model", str(model_dir), "--sae", str(sae_dir), "--data", str(jsonl)]
    assert main(["fit", *common, "--output", str(tmp_path / "p")]) == 2
    assert "nothing to fit" in capsys.readouterr().err
    assert main(["fit", *common, "--clusters", "two", "--output", str(tmp_path / "p")]) == 2
    assert main(["fit", *common, "--clusters", "2"]) == 2
    assert main(["augment", "--pipeline", str(fitted_dir), "--data", str(jsonl)]) == 2
    assert (
        main(
            [
                "augment",
                "--pipeline",
                str(fitted_dir),
                "--data",
                str(jsonl),
                "--no-filter",
                "--quality-threshold",
                "0.3",
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--sae", str(sae_dir)])  # argparse: --model and --data missing
    assert exit_info.value.code == 2


def test_missing_split_exits_1(fitted_dir, jsonl, tmp_path, capsys):
    assert (
        main(
            [
                "augment",
                "--pipeline",
                str(fitted_dir),
                "--data",
                str(jsonl),
                "--split",
                "test",
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert "split 'test' not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command, words",
    [
        ("fit", ["--quality-label", "pass rates", "sae-lens", "embedded"]),
        ("augment", ["--pipeline", "save_to_disk", "card"]),
        ("push", ["model repo", "--private"]),
        ("inspect", ["config.json", "model card"]),
    ],
)
def test_help_texts(command, words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for word in words:
        assert word in text
