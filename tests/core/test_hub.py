"""core/hub.py: the pattern arguments reach huggingface_hub as it reads them (a glob string stays one pattern)."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.utils import filter_repo_objects

import hf_saerl.core.hub
from hf_saerl.core.hub import download_folder, local_folder, upload_folder

REPO_FILES = ["config.json", "probe.json", "weights.safetensors", "README.md"]


@pytest.fixture
def fake_snapshot(monkeypatch, tmp_path):
    """``snapshot_download`` stand-in: writes the files of ``REPO_FILES`` that huggingface_hub's own filter keeps."""

    def snapshot_download(repo_id, *, allow_patterns=None, **kwargs):
        folder = tmp_path / repo_id.replace("/", "--")
        folder.mkdir(parents=True, exist_ok=True)
        for name in filter_repo_objects(REPO_FILES, allow_patterns=allow_patterns):
            (folder / name).write_text("x")
        return str(folder)

    monkeypatch.setattr(hf_saerl.core.hub, "snapshot_download", snapshot_download)


def downloaded(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        ("config.json", ["config.json"]),  # was list("config.json"): one-letter patterns, nothing matched
        ("*.json", ["config.json", "probe.json"]),  # was ["*", ".", "j", ...]: "*" matched every file
        (("*.json", "*.safetensors"), ["config.json", "probe.json", "weights.safetensors"]),
        (["README.md"], ["README.md"]),
        (None, sorted(REPO_FILES)),
    ],
)
def test_download_folder_reads_a_pattern_string_as_one_pattern(fake_snapshot, patterns, expected):
    assert downloaded(download_folder("me/repo", allow_patterns=patterns)) == expected
    assert downloaded(local_folder("me/other", "Thing", allow_patterns=patterns)) == expected


def test_upload_folder_hands_huggingface_hub_lists_or_single_strings(monkeypatch, tmp_path):
    calls = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("create", (repo_id, kw)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.setdefault("upload", kw) and "commit-info")
    out = upload_folder(
        tmp_path, "me/repo", allow_patterns=("*.json", "*.md"), ignore_patterns="*.tmp", delete_patterns=None
    )
    assert out == "commit-info"
    assert calls["create"] == ("me/repo", {"private": None, "repo_type": "model", "exist_ok": True})
    upload = calls["upload"]
    assert upload["allow_patterns"] == ["*.json", "*.md"] and upload["ignore_patterns"] == "*.tmp"
    assert upload["delete_patterns"] is None and upload["folder_path"] == str(tmp_path)


class _Saved(hf_saerl.core.hub.HubLoadMixin):
    """A loadable class that records what HubLoadMixin hands its ``_load_pretrained``."""

    @classmethod
    def _load_pretrained(cls, model_id, hub, **kwargs):
        return model_id, hub, kwargs


class _Unchecked(_Saved):
    _check_pretrained_source = False


def test_hub_load_mixin_hands_the_hub_options_and_the_rest_to_load_pretrained(tmp_path):
    model_id, hub, kwargs = _Saved.from_pretrained(tmp_path, revision="v2", token="t", colour="red")
    assert model_id == str(tmp_path) and kwargs == {"colour": "red"}
    assert hub == {
        "revision": "v2",
        "cache_dir": None,
        "force_download": False,
        "local_files_only": False,
        "token": "t",
    }
    # ModelHubMixin's entry point gives the same, and a subfolder is the class's own keyword
    model_id, hub, kwargs = _Saved._from_pretrained(model_id="owner/name", local_files_only=True, subfolder="q")
    assert (model_id, hub["local_files_only"], kwargs) == ("owner/name", True, {"subfolder": "q"})


def test_hub_load_mixin_checks_the_source_unless_the_class_does(tmp_path):
    file = tmp_path / "config.json"
    file.write_text("{}")
    with pytest.raises(FileNotFoundError, match="is a file; pass the folder written by save_pretrained"):
        _Saved.from_pretrained(file)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _Saved.from_pretrained(tmp_path / "missing")
    assert _Unchecked.from_pretrained(file)[0] == str(file)  # left to the class's _load_pretrained
