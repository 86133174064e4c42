"""Issue 13, "nothing silent", for the encoding stage: one test per bad input or fault (moved from
tests/reliability/test_encoding.py; its rollouts cases are in tests/rollouts/test_refusals.py, its model
loading case in tests/models/test_loading_refusals.py).

Each case asserts the error class and that its message names the problem (the argument, the value, the column and
row, the tensor and where it came from); where data is involved, also that ``Dataset.map`` left no cache file
behind.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
from datasets import Dataset, List, Value, load_dataset, load_from_disk

from hf_saerl import SAEEncoder, sparse_matrix
from hf_saerl.encoding import load_sae, sae_identity_of
from hf_saerl.errors import InvalidParameterError, NonFiniteError, ParameterTypeError
from hf_saerl.models import load_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def encoder(model, sae, tokenizer):
    return SAEEncoder(model, sae, tokenizer=tokenizer, top_k=8, max_length=32)


def files_in(path) -> list[str]:
    return sorted(os.listdir(path))


def map_leaves_nothing(encoder, ds, tmp_path, error, match):
    """``encoder.map(ds)`` into a cache file under ``tmp_path`` raises ``error`` and writes no file."""
    with pytest.raises(error, match=match):
        encoder.map(ds, cache_file_name=str(tmp_path / "out.arrow"))
    assert files_in(tmp_path) == []


def test_sae_with_nan_weights_is_refused_at_construction(model, sae, tokenizer):
    bad = copy.deepcopy(sae)
    with torch.no_grad():
        bad.W_enc[3, 5] = float("nan")
    with pytest.raises(NonFiniteError, match=r"the SAE .*tensor 'W_enc' hold 1 NaN or infinite value\(s\)"):
        SAEEncoder(model, bad, tokenizer=tokenizer)


def test_sae_folder_with_infinite_weights_names_the_folder(sae, tmp_path):
    bad = copy.deepcopy(sae)
    with torch.no_grad():
        bad.b_dec[0] = float("inf")
    bad.save_model(str(tmp_path / "sae"))
    with pytest.raises(NonFiniteError, match=r"the SAE in '.*sae'.*tensor 'b_dec'"):
        load_sae(tmp_path / "sae")


def test_model_with_nan_weights_is_refused_at_construction(model, sae, tokenizer):
    bad = copy.deepcopy(model)
    with torch.no_grad():
        bad.model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"the model LlamaForCausalLM: tensor 'model\.layers\.0\.mlp\.up_proj"):
        SAEEncoder(bad, sae, tokenizer=tokenizer)


def test_model_folder_with_nan_weights_names_the_folder(model, tokenizer, tmp_path):
    bad = copy.deepcopy(model)
    with torch.no_grad():
        bad.lm_head.weight[1, 1] = float("nan")
    bad.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    with pytest.raises(NonFiniteError, match=r"the model '.*m': tensor '.*'"):
        load_model(tmp_path / "m")


def test_overflowing_activations_are_refused_and_nothing_is_written(model, sae, tokenizer, tmp_path):
    hot = copy.deepcopy(model)  # finite weights whose attention output overflows float32
    with torch.no_grad():
        hot.model.layers[0].self_attn.o_proj.weight.fill_(3e38)
    enc = SAEEncoder(hot, sae, tokenizer=tokenizer, top_k=8)
    ds = Dataset.from_dict({"text": ["2 + 2 = 4", "fine"]})
    map_leaves_nothing(
        enc,
        ds,
        tmp_path,
        NonFiniteError,
        r"The activations at 'blocks\.1\.hook_resid_post' \(texts \[0, 1\] of this call\) hold",
    )


def test_overflowing_sae_codes_are_refused(model, sae, tokenizer):
    hot = copy.deepcopy(sae)
    with torch.no_grad():
        hot.W_enc.fill_(3e38)
    enc = SAEEncoder(model, hot, tokenizer=tokenizer, top_k=8)
    with pytest.raises(NonFiniteError, match=r"The SAE codes of the activations at 'blocks\.1\.hook_resid_post'"):
        enc({"text": ["2 + 2 = 4"]})


def test_sparse_matrix_refuses_nan_values():
    with pytest.raises(NonFiniteError, match=r"Column 'sae_values' hold 1 NaN or infinite value\(s\) of 3"):
        sparse_matrix({"sae_indices": [[0, 1], [2]], "sae_values": [[1.0, float("nan")], [2.0]]}, d_sae=4)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"top_k": 2.5}, InvalidParameterError, r"top_k must be an integer, got 2\.5 \(float\)"),
        ({"top_k": True}, InvalidParameterError, r"top_k must be an integer, got True \(bool\)"),
        ({"max_length": "512"}, InvalidParameterError, r"max_length must be an integer, got '512' \(str\)"),
        ({"token_budget": 0}, InvalidParameterError, r"token_budget must be >= 1"),
        ({"chat_template": "yes"}, ParameterTypeError, r"chat_template must be a bool, got 'yes'"),
        ({"tokens": {"exclude_bos": 1}}, ParameterTypeError, r"exclude_bos must be a bool, got 1 \(int\)"),
        (
            {"columns": {"indices": 3}},
            ParameterTypeError,
            r"FeatureColumns.indices must be a non-empty column name \(str\), got 3",
        ),
        ({"columns": ["ids"]}, ParameterTypeError, r"columns must be a FeatureColumns, a dict of its fields or None"),
        ({"tokens": "zeros"}, ParameterTypeError, r"tokens must be a TokenPolicy, a dict of its fields or None"),
        ({"text_column": ["a", "b"]}, ParameterTypeError, r"text_column must be a str or None, got \['a', 'b'\]"),
    ],
)
def test_encoder_arguments_are_typed(model, sae, tokenizer, kwargs, error, match):
    with pytest.raises(error, match=match):
        SAEEncoder(model, sae, tokenizer=tokenizer, **kwargs)


def test_encode_refuses_one_string(encoder):
    with pytest.raises(
        ParameterTypeError,
        match=r"encode takes a sequence of texts, got str 'abc'.*one text per "
        r"character.*encode\(\[text\]\)",
    ):
        encoder.encode("abc")


def test_int_values_in_the_text_column_name_column_and_row(encoder, tmp_path):
    ds = Dataset.from_dict({"text": [1, 2, 3]})
    map_leaves_nothing(
        encoder,
        ds,
        tmp_path,
        ParameterTypeError,
        r"column 'text' holds 1 \(int\) in batch row 0, not text.*cast_column\('text'",
    )


def test_list_of_strings_is_not_read_as_chat_messages(encoder, tmp_path):
    ds = Dataset.from_dict({"text": [["first part", "second part"]]})
    map_leaves_nothing(
        encoder,
        ds,
        tmp_path,
        ParameterTypeError,
        r"column 'text' holds a list of str in batch row 0, which is neither text nor chat messages",
    )


def test_list_of_strings_with_chat_template_names_the_problem(model, sae, tokenizer):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, chat_template=True)
    with pytest.raises(ParameterTypeError, match=r"holds a list of str in batch row 1.*Join the parts"):
        enc({"text": [[{"role": "user", "content": "hi"}], ["a", "b"]]})


def test_sparse_matrix_refuses_float_ids_in_a_batch():
    with pytest.raises(
        ParameterTypeError,
        match=r"Column 'sae_indices' holds latent ids of type float64, not "
        r"integers",
    ):
        sparse_matrix({"sae_indices": [[0, 1.7]], "sae_values": [[1.0, 2.0]]}, d_sae=4)


def test_sparse_matrix_refuses_float_ids_in_a_dataset():
    ds = Dataset.from_dict({"sae_indices": [[0.0, 1.5]], "sae_values": [[1.0, 2.0]]}, features=None)
    assert ds.features["sae_indices"] == List(Value("float64"))
    with pytest.raises(ParameterTypeError, match=r"Column 'sae_indices' holds latent ids of type double"):
        sparse_matrix(ds, d_sae=4)


def test_sparse_matrix_refuses_a_fractional_width():
    with pytest.raises(InvalidParameterError, match=r"d_sae must be an integer, got 4\.5"):
        sparse_matrix({"sae_indices": [[0]], "sae_values": [[1.0]]}, d_sae=4.5)


def test_sae_columns_record_which_sae_made_them(encoder, tmp_path):
    out = encoder.map(Dataset.from_dict({"text": ["2 + 2 = 4", "The sky is blue."]}))
    expected = {"fingerprint": encoder.fingerprint, "d_sae": encoder.d_sae, "hook_name": encoder.hook_name}
    out.save_to_disk(str(tmp_path / "disk"))
    out.to_parquet(str(tmp_path / "o.parquet"))
    reloaded = {
        "map": out.map(lambda b: b, batched=True),
        "filter": out.filter(lambda r: True),
        "save_to_disk": load_from_disk(str(tmp_path / "disk")),
        "parquet": load_dataset(
            "parquet", data_files=str(tmp_path / "o.parquet"), split="train", cache_dir=str(tmp_path / "cache")
        ),
        "iterable": out.to_iterable_dataset(),
    }
    for how, ds in reloaded.items():
        identity = sae_identity_of(ds)
        assert identity is not None and {k: identity[k] for k in expected} == expected, how
    assert sae_identity_of(Dataset.from_dict(out.to_dict())) is None  # plain lists carry no record


def test_template_over_a_none_value_is_empty_not_the_word_none(model, sae, tokenizer, tmp_path):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, text_column=None, template="Q: {q} A: {a}")
    ds = Dataset.from_dict({"q": ["1+1?", "2+2?"], "a": ["2", None]})
    map_leaves_nothing(
        enc, ds, tmp_path, InvalidParameterError, r"1 empty text\(s\) in this batch \(batch rows \[1\]\)"
    )
    zeros = SAEEncoder(
        model, sae, tokenizer=tokenizer, text_column=None, template="Q: {q} A: {a}", tokens={"on_empty": "zeros"}
    )
    assert zeros({"q": ["1+1?", "2+2?"], "a": ["2", None]})["sae_n_tokens"][1] == 0


def test_chat_message_without_content_is_empty_not_scaffolding(model, sae, tokenizer, tmp_path):
    enc = SAEEncoder(model, sae, tokenizer=tokenizer, chat_template=True)
    ds = Dataset.from_dict({"text": [[{"role": "user", "content": "hi"}], [{"role": "user", "content": None}]]})
    map_leaves_nothing(
        enc, ds, tmp_path, InvalidParameterError, r"1 empty text\(s\) in this batch \(batch rows \[1\]\)"
    )
    zeros = SAEEncoder(model, sae, tokenizer=tokenizer, chat_template=True, tokens={"on_empty": "zeros"})
    assert zeros({"text": [[{"role": "user"}]]})["sae_n_tokens"] == [0]
