"""JSON and file-format helpers shared by every saved hf_saerl object (estimators, pipelines, audits).

One strict JSON dialect (numpy to Python, tuples to lists, NaN/inf refused rather than written as ``NaN`` or
silently turned into ``null``), one reader that names the file it refuses, and one format-version check.

Example:
    >>> import numpy as np
    >>> from hf_saerl.core.serialization import jsonable
    >>> jsonable({"a": np.float32(0.5), "b": (1, 2), "c": np.arange(2)})
    {'a': 0.5, 'b': [1, 2], 'c': [0, 1]}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import BundleError

__all__ = ["check_format_version", "jsonable", "read_json", "write_json"]


def jsonable(obj: Any, *, nonfinite: str = "null") -> Any:
    """``obj`` as plain JSON types: mappings (keys as str), lists, str, int, float, bool, None.

    numpy scalars and arrays become Python values and lists, tuples become lists. ``nonfinite`` says what a NaN
    or infinite float becomes: ``"null"`` (``None``, strict JSON; for metrics, where "not measured" is honest) or
    ``"raise"`` (a ``ValueError`` naming the key path; for parameters, where ``null`` would change behaviour).
    """
    return _jsonable(obj, nonfinite, "")


def _jsonable(obj: Any, nonfinite: str, where: str) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v, nonfinite, f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays and scalars, torch tensors
        obj = obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, nonfinite, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, float) and not math.isfinite(obj):
        if nonfinite == "raise":
            raise ValueError(f"{where or 'the value'} is {obj}, which JSON cannot hold; pass a finite number.")
        return None
    return obj


def write_json(path: str | Path, obj: Any, *, nonfinite: str = "null") -> None:
    """Write ``obj`` as strict, sorted, indented JSON (see :func:`jsonable` for ``nonfinite``)."""
    text = json.dumps(jsonable(obj, nonfinite=nonfinite), indent=2, sort_keys=True, allow_nan=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def read_json(path: str | Path, what: str, fix: str) -> dict[str, Any]:
    """The JSON object in ``path`` (holding ``what``). A missing file is a ``FileNotFoundError`` listing the
    folder; unparsable JSON, ``NaN``/``Infinity`` literals or a non-object is a :class:`~hf_saerl.errors.BundleError`.
    Both messages end with ``fix``."""
    path = Path(path)
    if not path.is_file():
        found = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        raise FileNotFoundError(f"{path} is missing, so {what} cannot be loaded (the folder holds {found}). {fix}")

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"the non-standard constant {name}")

    try:
        obj = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise BundleError(f"Could not parse {path} ({what}): {e}. The file is corrupt. {fix}") from e
    if not isinstance(obj, dict):
        raise BundleError(
            f"{path} ({what}) should hold a JSON object, found {type(obj).__name__}; the file is corrupt. {fix}"
        )
    return obj


def check_format_version(found: Any, supported: int, path: str | Path, writer: Any = None) -> int:
    """Check a saved ``format_version``: an int no newer than ``supported``. Returns it.

    A newer version is refused with the upgrade command; a missing or non-int one as a corrupt file.
    """
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        raise BundleError(
            f"{path} has no valid 'format_version' (found {found!r}); the file is corrupt. Save it again, "
            "or download it again with force_download=True."
        )
    if found > supported:
        by = f" by hf_saerl {writer}" if writer else ""
        raise BundleError(
            f"{path} was written in format version {found}{by}; this hf_saerl {__version__} reads format "
            f"versions up to {supported}. Upgrade hf_saerl (pip install -U hf-saerl), or save the object "
            "again with this version."
        )
    return found
