"""Every bad input to the encoder gives a clear error that names the problem and the fix."""

import pytest
from datasets import Dataset

from hf_saerl import SAEEncoder
from hf_saerl.errors import HookMismatchError, InvalidParameterError, MissingColumnError, WidthMismatchError
from hf_saerl.testing import tiny_sae


def test_unknown_hook_is_refused_at_construction(model, tokenizer, sae):
    with pytest.raises(HookMismatchError, match=r"Unknown hook name 'blocks\.1\.hook_resid_sideways'.*Supported"):
        SAEEncoder(model, sae, tokenizer=tokenizer, hook_name="blocks.1.hook_resid_sideways")


def test_hook_layer_out_of_range(model, tokenizer, sae):
    with pytest.raises(HookMismatchError, match=r"layer 7, but the model has 3 layers"):
        SAEEncoder(model, sae, tokenizer=tokenizer, hook_name="blocks.7.hook_resid_post")


def test_sae_width_mismatch_is_refused_at_construction(model, tokenizer):
    wide = tiny_sae(d_in=48, hook_name="blocks.1.hook_resid_post")
    with pytest.raises(WidthMismatchError, match=r"SAE width mismatch: the SAE expects d_in=48.*hidden size 32"):
        SAEEncoder(model, wide, tokenizer=tokenizer)


def test_sae_width_mismatch_for_a_spec_model(model_dir):
    wide = tiny_sae(d_in=64, hook_name="blocks.0.hook_resid_post")
    with pytest.raises(WidthMismatchError, match="SAE width mismatch"):
        SAEEncoder(str(model_dir), wide)


def test_sae_without_hook_name(model, tokenizer):
    sae = tiny_sae()
    sae.cfg.metadata.hook_name = None
    with pytest.raises(HookMismatchError, match="pass hook_name="):
        SAEEncoder(model, sae, tokenizer=tokenizer)
    assert SAEEncoder(model, sae, tokenizer=tokenizer, hook_name="model.layers.1").hook_name == "model.layers.1"


def test_missing_column(model, tokenizer, sae):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, text_column="question")
    with pytest.raises(MissingColumnError, match=r"Missing column\(s\) \['question'\]; the dataset has \['text'\]"):
        enc.map(Dataset.from_dict({"text": ["a"]}))
    templ = SAEEncoder(model, sae, tokenizer=tokenizer, text_column=None, template="{q} {a}")
    with pytest.raises(MissingColumnError, match=r"\['a'\]"):
        templ({"q": ["x"]})


def test_empty_text(model, tokenizer, sae):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer)
    message = r"2 empty text\(s\) in this batch \(batch rows \[1, 2\]\).*on_empty='zeros'"
    with pytest.raises(InvalidParameterError, match=message):
        enc({"text": ["fine", "  ", None]})
    out = SAEEncoder(model, sae, tokenizer=tokenizer, tokens={"on_empty": "zeros"})({"text": ["fine", "", None]})
    assert out["sae_n_tokens"] == [4, 0, 0]
    assert len(out["sae_indices"][1]) == 0 and len(out["sae_indices"][0]) > 0


def test_overlong_text_error_mode(model, tokenizer, sae):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, max_length=4, tokens={"on_overlong": "error"})
    with pytest.raises(InvalidParameterError, match=r"1 text\(s\) exceed max_length=4 tokens.*longest 8"):
        enc({"text": ["ab", "abcdefg"]})


def test_chat_messages_need_chat_template(model, tokenizer, sae):
    with pytest.raises(InvalidParameterError, match="pass chat_template=True"):
        SAEEncoder(model, sae, tokenizer=tokenizer)({"text": [[{"role": "user", "content": "hi"}]]})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pooling": "median"}, "Unknown pooling 'median'"),
        ({"top_k": 0}, "top_k must be a positive int"),
        ({"max_length": 1}, "max_length must be at least 2"),
        ({"tokens": {"on_empty": "skip"}}, "on_empty must be"),
        ({"text_column": None}, "Pass text_column="),
        ({"text_column": None, "template": "{}"}, "must name its columns"),
    ],
)
def test_bad_parameters(model, tokenizer, sae, kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        SAEEncoder(model, sae, tokenizer=tokenizer, **kwargs)


def test_loaded_model_needs_tokenizer(model, sae):
    with pytest.raises(InvalidParameterError, match="pass tokenizer="):
        SAEEncoder(model, sae)


def test_bad_sae_references(model, tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a sae-lens SAE folder"):
        SAEEncoder(model, str(tmp_path), tokenizer=tokenizer)
    with pytest.raises(InvalidParameterError, match=r"\(release, sae_id\)"):
        SAEEncoder(model, ("only-release",), tokenizer=tokenizer)
    with pytest.raises(TypeError, match="sae must be"):
        SAEEncoder(model, 42, tokenizer=tokenizer)


def test_activation_width_mismatch_at_a_non_residual_hook(model, tokenizer, sae):
    """A module path inside a layer (here the MLP's up-projection, 64 wide) is not checked at construction;
    the first forward refuses it."""
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, hook_name="model.layers.1.mlp.up_proj")
    with pytest.raises(WidthMismatchError, match=r"has width \d+ but the SAE expects d_in=32"):
        enc.encode(["abc"])
