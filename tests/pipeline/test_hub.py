"""Hub I/O without network: push_to_hub / from_pretrained through captured uploads, and curated dataset cards."""

import fnmatch
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from datasets import Dataset, DatasetDict, load_from_disk
from huggingface_hub import DatasetCard, HfApi, ModelCard
from huggingface_hub.utils import filter_repo_objects

import hf_saerl.core.hub
from hf_saerl.encoding.encoder import SAEEncoder
from hf_saerl.errors import InvalidParameterError
from hf_saerl.estimators.clustering import SAEClusterer
from hf_saerl.estimators.probes import QualityProbe
from hf_saerl.pipeline import SAERLPipeline
from hf_saerl.pipeline.curated import build_dataset_card, push_curated

COLUMNS = ["sae_indices", "sae_values", "sae_n_tokens", "quality", "cluster_id", "cluster_distance"]


class FakeHub:
    """Stands in for the Hub: uploads land in ``root/<repo_type>/<repo_id>``, downloads are served from there."""

    def __init__(self, root: Path):
        self.root = root
        self.calls = []

    def install(self, monkeypatch):
        hub = self

        def create_repo(api, repo_id, *, private=None, repo_type=None, exist_ok=False, **kw):
            hub.calls.append(("create_repo", repo_id, repo_type or "model", private))
            return SimpleNamespace(repo_id=repo_id)  # what create_repo returns, as far as callers read it

        def upload_folder(api, *, repo_id, folder_path, repo_type=None, **kw):
            hub.calls.append(("upload_folder", repo_id, repo_type))
            hub.upload_kwargs = kw
            target = hub.root / (repo_type or "model") / repo_id
            files = [p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file()]
            for rel in filter_repo_objects(
                files,
                allow_patterns=kw.get("allow_patterns"),  # as HfApi filters
                ignore_patterns=kw.get("ignore_patterns"),
            ):
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(Path(folder_path) / rel, target / rel)
            return f"https://huggingface.co/{repo_id}/commit/{len(hub.calls):040d}"  # a CommitInfo is this str

        def upload_file(api, *, path_or_fileobj, path_in_repo, repo_id, repo_type=None, **kw):
            hub.calls.append(("upload_file", repo_id, path_in_repo))
            target = hub.root / (repo_type or "model") / repo_id / path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path_or_fileobj)

        def snapshot_download(repo_id, *, allow_patterns=None, revision=None, **kw):
            hub.calls.append(("snapshot_download", repo_id, revision))
            source = hub.root / "model" / repo_id
            target = hub.root / "cache" / repo_id
            for path in source.rglob("*"):
                rel = path.relative_to(source).as_posix()
                if path.is_file() and (allow_patterns is None or any(fnmatch.fnmatch(rel, p) for p in allow_patterns)):
                    (target / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, target / rel)
            return str(target)

        def dataset_push_to_hub(ds, repo_id, *, private=None, token=None, **kw):
            hub.calls.append(("dataset_push_to_hub", repo_id, private))
            ds.save_to_disk(str(hub.root / "dataset" / repo_id / "data"))

        monkeypatch.setattr(HfApi, "create_repo", create_repo)
        monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
        monkeypatch.setattr(HfApi, "upload_file", upload_file)
        monkeypatch.setattr(hf_saerl.core.hub, "snapshot_download", snapshot_download)
        monkeypatch.setattr(Dataset, "push_to_hub", dataset_push_to_hub)
        monkeypatch.setattr(DatasetDict, "push_to_hub", dataset_push_to_hub)
        return self


@pytest.fixture(scope="module")
def data():
    texts = [("Solve: " if i % 2 else "junk ## ") + "x" * (1 + i % 7) + f" {i}" for i in range(24)]
    return Dataset.from_dict({"text": texts, "good": [bool(i % 2) for i in range(24)]})


@pytest.fixture(scope="module")
def pipeline(model_dir, sae_dir, data):
    enc = SAEEncoder(str(model_dir), str(sae_dir), top_k=8)
    pipe = SAERLPipeline(
        enc,
        quality=QualityProbe(d_sae=enc.d_sae, cv=2),
        clusterer=SAEClusterer(d_sae=enc.d_sae, n_clusters=2),
        quality_threshold=0.5,
    )
    return pipe.fit(data, quality_label="good")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    return FakeHub(tmp_path / "hub").install(monkeypatch)


def test_push_to_hub_then_from_pretrained_is_bit_identical(pipeline, data, hub):
    url = pipeline.push_to_hub("me/pipe", private=True, token="hf_fake")
    assert url.startswith("https://huggingface.co/me/pipe/commit/")  # the commit URL, as ModelHubMixin returns
    assert hub.calls[:2] == [("create_repo", "me/pipe", "model", True), ("upload_folder", "me/pipe", "model")]
    uploaded = hub.root / "model" / "me" / "pipe"
    (uploaded / "notes.pkl").write_bytes(b"not for us")  # unexpected files in the repo are never fetched
    assert "me/pipe" in (uploaded / "README.md").read_text()  # the card's usage snippet names the repo

    loaded = SAERLPipeline.from_pretrained("me/pipe", revision="v1")
    assert ("snapshot_download", "me/pipe", "v1") in hub.calls
    assert not (hub.root / "cache" / "me" / "pipe" / "notes.pkl").exists()
    a, b = pipeline(data), loaded(data)
    assert len(a) == len(b) < len(data)  # the threshold travelled with the bundle
    for col in COLUMNS:
        if col in ("sae_indices", "sae_values"):
            for x, y in zip(a[col], b[col], strict=True):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        else:
            np.testing.assert_array_equal(np.asarray(a[col]), np.asarray(b[col]))


def test_offline_hub_id_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="Could not fetch 'nobody/nothing' from the Hugging Face Hub"):
        SAERLPipeline.from_pretrained("nobody/nothing")
    with pytest.raises(FileNotFoundError, match="neither a local folder nor a Hub repo id"):
        SAERLPipeline.from_pretrained("./no/such/folder")


def test_dataset_card_records_pipeline_columns_and_filtering(pipeline, data):
    curated, stats = pipeline(data, return_stats=True)
    columns = {name: str(getattr(f, "dtype", "list")) for name, f in curated.features.items()}
    card = build_dataset_card(
        repo_id="me/curated",
        columns=columns,
        pipeline_repo="me/pipe",
        pipeline_config=pipeline.config(),
        filtering=stats,
        source="me/raw",
        license="mit",
    )
    assert card.data.tags and "hf_saerl" in card.data.tags
    assert card.data.source_datasets == ["me/raw"] and card.data.license == "mit"
    text = card.text
    assert "[me/pipe](https://huggingface.co/me/pipe)" in text
    assert f"Kept {stats['n_kept']} of {len(data)} rows (dropped {stats['n_dropped']})" in text
    assert "quality >= 0.5" in text
    assert "hook `blocks.1.hook_resid_post`" in text and "d_sae=128" in text and "top-k 8" in text
    for name in curated.column_names:
        assert f"| `{name}` |" in text
    assert "| `quality` | float32 | quality probe score" in text
    assert "| `text` | string | from the source dataset |" in text
    record = json.loads(re.search(r"## hf_saerl record\n\n```json\n(.*?)\n```", text, re.S).group(1))
    assert record["pipeline_repo"] == "me/pipe" and record["filtering"]["n_dropped"] == stats["n_dropped"]
    assert record["pipeline"]["d_sae"] == 128 and record["pipeline"]["quality_threshold"] == 0.5
    # the card is valid card syntax: it round-trips through huggingface_hub's parser
    assert DatasetCard(str(card)).data.tags == card.data.tags


def test_dataset_card_without_pipeline_or_filtering():
    card = build_dataset_card(
        repo_id="me/x", columns={"text": "string", "my_q": "float32"}, pipeline_config={"columns": {"quality": "my_q"}}
    )
    assert "None: every row of the source is kept." in card.text
    assert "Pipeline: not recorded" in card.text
    assert "| `my_q` | float32 | quality probe score" in card.text  # renamed columns keep their meaning


def test_push_curated_uploads_card_then_data(pipeline, data, hub):
    curated, stats = pipeline(data, return_stats=True)
    card = push_curated(
        curated,
        "me/curated",
        pipeline=pipeline,
        pipeline_repo="me/pipe",
        filtering=stats,
        source="me/raw",
        private=True,
        token="hf_fake",
    )
    names = [c[0] for c in hub.calls]
    assert names == ["create_repo", "upload_file", "dataset_push_to_hub"]  # card first: push_to_hub merges into it
    assert hub.calls[0] == ("create_repo", "me/curated", "dataset", True)
    assert hub.calls[2] == ("dataset_push_to_hub", "me/curated", True)
    repo = hub.root / "dataset" / "me" / "curated"
    uploaded_card = DatasetCard((repo / "README.md").read_text())
    assert uploaded_card.text == card.text and "me/pipe" in uploaded_card.text
    back = load_from_disk(str(repo / "data"))
    assert back.column_names == curated.column_names and back["quality"] == curated["quality"]
    assert len(back) == stats["n_kept"]


def test_push_curated_datasetdict(pipeline, data, hub):
    dd = DatasetDict({"train": data.select(range(16)), "test": data.select(range(16, 24))})
    curated = pipeline(dd)
    card = push_curated(curated, "me/dd", pipeline=pipeline)
    assert "quality >= 0.5" in card.text  # the pipeline's threshold is recorded when no stats are given
    back = load_from_disk(str(hub.root / "dataset" / "me" / "dd" / "data"))
    assert set(back) == {"train", "test"} and back["test"]["cluster_id"] == curated["test"]["cluster_id"]


# ---------------------------------------------------------------------- huggingface_hub's save/push dialect
def test_save_pretrained_push_to_hub_returns_the_commit_url(pipeline, hub, tmp_path):
    url = pipeline.save_pretrained(tmp_path / "pipe", push_to_hub=True, repo_id="me/pushed", private=True)
    assert url.startswith("https://huggingface.co/me/pushed/commit/")
    assert ("create_repo", "me/pushed", "model", True) in hub.calls
    assert (tmp_path / "pipe" / "config.json").is_file()  # saved locally too
    assert "me/pushed" in (hub.root / "model" / "me" / "pushed" / "README.md").read_text()
    pipeline.save_pretrained(tmp_path / "by-name", push_to_hub=True)  # the repo defaults to the folder's name
    assert ("create_repo", "by-name", "model", None) in hub.calls


def test_push_to_hub_branch_and_patterns(pipeline, hub):
    pipeline.push_to_hub("me/b", branch="dev", create_pr=True)
    assert hub.upload_kwargs["revision"] == "dev" and hub.upload_kwargs["create_pr"] is True
    pipeline.push_to_hub(
        "me/only-config", allow_patterns=["config.json", "quality/*"], ignore_patterns="*.md", delete_patterns="old/*"
    )
    assert hub.upload_kwargs["delete_patterns"] == "old/*"
    pushed = hub.root / "model" / "me" / "only-config"
    assert sorted(p.relative_to(pushed).as_posix() for p in pushed.rglob("*") if p.is_file()) == [
        "config.json",
        "quality/config.json",
        "quality/quality_probe.json",
        "quality/quality_probe.safetensors",
    ]


def test_save_pretrained_refuses_a_config(pipeline, tmp_path):
    with pytest.raises(InvalidParameterError, match=r"take no config=.*model_id="):
        pipeline.save_pretrained(tmp_path / "p", config={"d_sae": 1})
    assert not (tmp_path / "p").exists()


def test_generate_model_card_is_a_model_card(pipeline, tmp_path):
    card = pipeline.generate_model_card(repo_id="me/pipe", license="mit", tags=["math"])
    assert isinstance(card, ModelCard)
    assert card.data.library_name == "hf_saerl" and card.data.license == "mit"
    assert card.data.tags[:1] == ["hf_saerl"] and "math" in card.data.tags
    assert 'SAERLPipeline.from_pretrained("me/pipe")' in card.text and "| quality threshold | 0.5 |" in card.text
    pipeline.save_pretrained(tmp_path / "p", model_card_kwargs={"license": "apache-2.0"})
    saved = ModelCard.load(tmp_path / "p" / "README.md")
    assert saved.data.license == "apache-2.0" and saved.text == pipeline.generate_model_card().text
