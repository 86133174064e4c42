"""as_config and refuse_moved: the shared manners of config objects."""

from dataclasses import dataclass

import pytest

from hf_saerl.core.configs import as_config, refuse_moved
from hf_saerl.errors import InvalidParameterError, ParameterTypeError


@dataclass(frozen=True)
class Window:
    size: int = 8
    stride: int = 4


def test_as_config_takes_none_a_dict_or_the_object():
    assert as_config(Window, None, "window") == Window()
    given = Window(2, 1)
    assert as_config(Window, given, "window") is given
    assert as_config(Window, {"stride": 2}, "window") == Window(8, 2)


def test_as_config_refuses_unknown_keys_and_other_types():
    with pytest.raises(
        InvalidParameterError, match=r"window holds unknown key\(s\) \['sise'\]; Window has \['size', 'stride'\]"
    ):
        as_config(Window, {"sise": 3, "stride": 1}, "window")
    with pytest.raises(ParameterTypeError, match=r"window must be a Window, a dict of its fields or None.*got list"):
        as_config(Window, [8, 4], "window")


def test_refuse_moved_names_the_new_route_with_the_value():
    routes = {"window_size": ("window", Window, "size")}
    with pytest.raises(
        ParameterTypeError,
        match=r"Reader\(window_size=\.\.\.\) is set through window=: pass "
        r"window=Window\(size=3\) or window=\{'size': 3\}\.",
    ):
        refuse_moved("Reader", {"window_size": 3}, routes, "Settings go in window=Window(...).")


def test_refuse_moved_calls_other_keywords_unexpected_and_is_a_type_error():
    with pytest.raises(TypeError, match=r"Reader got an unexpected keyword argument 'colour'\. Settings go in"):
        refuse_moved("Reader", {"colour": 1}, {}, "Settings go in window=Window(...).")
