"""Lazy re-exports for package ``__init__`` files, so that importing a package does not import its heavy modules.

A package lists ``public name -> defining module`` and gets a module ``__getattr__`` (PEP 562) that imports the
module on first use and caches the attribute. ``import hf_saerl.encoding`` then costs nothing; torch loads when
``hf_saerl.encoding.SAEEncoder`` is first touched.

Example:
    >>> import types
    >>> package = types.ModuleType("example")
    >>> package.__getattr__, package.__dir__, package.__all__ = lazy_exports(package.__dict__, {"dumps": "json"})
    >>> import json
    >>> package.dumps is json.dumps, package.__all__
    (True, ['dumps'])
    >>> package.loads
    Traceback (most recent call last):
    ...
    AttributeError: module 'example' has no attribute 'loads'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: dict[str, Any], exports: Mapping[str, str], also: tuple[str, ...] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for a package whose public names live in the modules of ``exports``.

    ``namespace`` is the package's ``globals()``: a resolved name is stored there, so the next access is a plain
    attribute lookup. ``also`` names public attributes the package defines itself (e.g. ``__version__``).
    """
    names = [*also, *sorted(exports)]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__, names
