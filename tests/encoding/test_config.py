"""The encoder's grouped settings: FeatureColumns and TokenPolicy validate on construction, take dicts, and map to
and from the flat keys SAEEncoder.config() records."""

import dataclasses

import pytest

from hf_saerl.encoding.config import MOVED, FeatureColumns, TokenPolicy, check_feature_options, grouped_options
from hf_saerl.errors import InvalidParameterError, ParameterTypeError


def test_feature_columns_defaults_are_the_library_column_names():
    from hf_saerl.core import columns as C

    cols = FeatureColumns()
    assert cols.names() == [C.SAE_INDICES, C.SAE_VALUES, C.SAE_N_TOKENS, C.SAE_TRUNCATED]
    assert cols.to_config() == {
        "indices_column": "sae_indices",
        "values_column": "sae_values",
        "n_tokens_column": "sae_n_tokens",
        "truncated_column": "sae_truncated",
        "activations_column": None,
    }
    assert FeatureColumns(activations="acts").names()[-1] == "acts"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"indices": ""},
            ParameterTypeError,
            r"FeatureColumns.indices must be a non-empty column name \(str\), got ''",
        ),
        ({"values": None}, ParameterTypeError, r"FeatureColumns.values must be .*got None.*FeatureColumns\(values="),
        ({"activations": 3}, ParameterTypeError, r"FeatureColumns.activations must be .*got 3"),
        ({"values": "sae_indices"}, InvalidParameterError, r"\['sae_indices'\] are used twice.*\(values='my_values'\)"),
        ({"activations": "sae_truncated"}, InvalidParameterError, r"used twice.*FeatureColumns\(activations="),
    ],
)
def test_feature_columns_refuse_bad_names(kwargs, error, match):
    with pytest.raises(error, match=match):
        FeatureColumns(**kwargs)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FeatureColumns().indices = "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        TokenPolicy().on_empty = "zeros"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"on_overlong": "cut"}, InvalidParameterError, r"on_overlong must be 'truncate' or 'error'; got 'cut'"),
        ({"on_empty": "skip"}, InvalidParameterError, r"on_empty must be 'error' or 'zeros'; got 'skip'"),
        ({"exclude_bos": "yes"}, ParameterTypeError, r"exclude_bos must be a bool, got 'yes'"),
        ({"pool_start": -1}, InvalidParameterError, r"pool_start must be an integer >= 0, got -1.*pool_start=None"),
        ({"pool_start": 1.0}, InvalidParameterError, r"pool_start must be an integer, got 1\.0 \(float\)"),
    ],
)
def test_token_policy_refuses_bad_rules(kwargs, error, match):
    with pytest.raises(error, match=match):
        TokenPolicy(**kwargs)


def test_token_policy_flat_keys_are_its_fields():
    assert TokenPolicy(pool_start=2).to_config() == {
        "on_overlong": "truncate",
        "on_empty": "error",
        "exclude_bos": True,
        "pool_start": 2,
    }


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_length": 1}, "max_length must be at least 2"),
        ({"max_length": 2.0}, r"max_length must be an integer, got 2\.0"),
        ({"pooling": "median"}, "Unknown pooling 'median'"),
        ({"top_k": 0}, "top_k must be a positive int"),
        ({"top_k": True}, r"top_k must be an integer, got True"),
        ({"token_budget": 0}, "token_budget must be >= 1"),
    ],
)
def test_check_feature_options_refuses(kwargs, match):
    options = {"max_length": 512, "pooling": "mean", "top_k": 64, "token_budget": 4096, **kwargs}
    with pytest.raises(InvalidParameterError, match=match):
        check_feature_options(**options)


def test_pooling_names_match_the_pooling_module():
    from hf_saerl.encoding.pooling import POOLINGS

    for name in POOLINGS:
        check_feature_options(max_length=2, pooling=name, top_k=None, token_budget=1)


def test_grouped_options_inverts_the_flat_config():
    cols, tokens = FeatureColumns(indices="i", activations="a"), TokenPolicy(on_empty="zeros", pool_start=1)
    flat = {"top_k": 8, "hook_name": "h", **cols.to_config(), **tokens.to_config()}
    grouped = grouped_options(flat)
    assert grouped == {"top_k": 8, "hook_name": "h", "columns": cols, "tokens": tokens}
    # flat keys land on top of a given group (a dict or the object); no flat keys keep the group as given
    assert grouped_options({"columns": {"values": "v"}, "indices_column": "i"})["columns"] == FeatureColumns("i", "v")
    assert grouped_options({"tokens": tokens})["tokens"] == tokens


def test_moved_routes_cover_every_field_once():
    assert sorted(MOVED) == sorted(
        [f"{f.name}_column" for f in dataclasses.fields(FeatureColumns)]
        + [f.name for f in dataclasses.fields(TokenPolicy)]
    )
    assert {param for param, _, _ in MOVED.values()} == {"columns", "tokens"}
