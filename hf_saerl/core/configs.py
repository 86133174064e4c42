"""Manners every config object shares: taking one as itself, ``None`` or a dict, and refusing moved keywords.

A constructor that groups many knobs into a frozen dataclass (one route per setting) accepts the dataclass, a dict
of its fields or ``None`` for the defaults (:func:`as_config`), and answers a keyword argument that moved into the
dataclass with an error saying where it went (:func:`refuse_moved`).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Columns:
    ...     text: str = "text"
    >>> as_config(Columns, {"text": "prompt"}, "columns")
    Columns(text='prompt')
    >>> refuse_moved("Reader", {"text_column": "q"}, {"text_column": ("columns", Columns, "text")}, "")
    Traceback (most recent call last):
    ...
    hf_saerl.errors.ParameterTypeError: Reader(text_column=...) is set through columns=: pass columns=Columns(text='q') or columns={'text': 'q'}.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NoReturn, TypeVar

from ..errors import InvalidParameterError, ParameterTypeError

__all__ = ["as_config", "refuse_moved"]

T = TypeVar("T")


def as_config(cls: type[T], value: Any, param: str) -> T:
    """``value`` as a ``cls`` (a dataclass): ``None`` gives the defaults, a dict its fields, an instance itself.

    A dict with keys that are not fields of ``cls`` is an :class:`~hf_saerl.errors.InvalidParameterError` naming
    them and the fields; any other type a :class:`~hf_saerl.errors.ParameterTypeError`. ``param`` is the name of
    the argument ``value`` came in as (for the messages). The fields are validated as ``cls`` does on construction.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Window:
        ...     size: int = 8
        >>> as_config(Window, None, "window"), as_config(Window, Window(3), "window")
        (Window(size=8), Window(size=3))
        >>> as_config(Window, {"sise": 4}, "window")
        Traceback (most recent call last):
        ...
        hf_saerl.errors.InvalidParameterError: window holds unknown key(s) ['sise']; Window has ['size']. Fix the name, or pass window=Window(...).
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    name = cls.__name__
    if isinstance(value, Mapping):
        fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]  # cls is a dataclass
        unknown = sorted(str(k) for k in set(value) - set(fields))
        if unknown:
            raise InvalidParameterError(
                f"{param} holds unknown key(s) {unknown}; {name} has {fields}. Fix the name, or pass {param}={name}(...)."
            )
        return cls(**dict(value))
    raise ParameterTypeError(
        f"{param} must be a {name}, a dict of its fields or None (the defaults), got {type(value).__name__}. "
        f"Pass e.g. {param}={name}(...) or {param}={{...}}."
    )


def refuse_moved(
    owner: str, moved: Mapping[str, Any], routes: Mapping[str, tuple[str, type, str]], hint: str
) -> NoReturn:
    """Raise a :class:`~hf_saerl.errors.ParameterTypeError` (a ``TypeError``, as Python gives for any unexpected
    keyword) for the first of ``moved``, the keyword arguments ``owner`` got beyond its parameters.

    ``routes`` maps a keyword that moved into a config object to ``(parameter, config class, field)``; the error
    then shows both ways to set it (the class, or a dict). Any other keyword is unexpected, and ``hint`` says where
    settings go.
    """
    name = sorted(moved)[0]
    if name not in routes:
        raise ParameterTypeError(f"{owner} got an unexpected keyword argument {name!r}. {hint}".rstrip())
    param, cls, field = routes[name]
    value = moved[name]
    raise ParameterTypeError(
        f"{owner}({name}=...) is set through {param}=: pass {param}={cls.__name__}({field}={value!r}) or "
        f"{param}={{{field!r}: {value!r}}}."
    )
