"""Checks of scalar arguments at the edge (a finite number in a range, a whole number, a bool), shared by stages 4-7.

One copy, used by the curriculum, the audit and the integrations (``core/validation.py`` may take them over).

Each check returns the value as a plain Python ``float`` / ``int`` / ``bool`` and otherwise raises an error naming
the argument, the expectation, the value and the fix given by the caller:

* :func:`check_real`: :class:`~hf_saerl.errors.ParameterTypeError` for a non-number (a string, a bool, a list),
  :class:`~hf_saerl.errors.NonFiniteError` for NaN or infinity, :class:`~hf_saerl.errors.InvalidParameterError`
  out of range;
* :func:`check_integer`: :class:`~hf_saerl.errors.InvalidParameterError` for anything but a whole number (a bool,
  ``2.0``, ``"0"``) or one below ``minimum``, as the curriculum's ``batch_size`` / ``seed`` checks always did;
* :func:`check_bool`: :class:`~hf_saerl.errors.ParameterTypeError` for anything but ``True`` / ``False``.

Example:
    >>> from hf_saerl.curriculum.checks import check_bool, check_integer, check_real
    >>> check_real("beta", 0.1, "Pass e.g. beta=0.1.", low=0.0, low_open=True), check_integer("n", 3, "Pass n=3.")
    (0.1, 3)
    >>> check_real("lam", float("nan"), "Pass a finite lam, e.g. lam=1.0, or lam=0.0 for no shaping.")
    Traceback (most recent call last):
    ...
    hf_saerl.errors.NonFiniteError: lam must be a finite number, got nan. Pass a finite lam, e.g. lam=1.0, or lam=0.0 for no shaping.
    >>> check_bool("normalize", "yes", "Pass normalize=True or normalize=False.")
    Traceback (most recent call last):
    ...
    hf_saerl.errors.ParameterTypeError: normalize must be a bool, got 'yes' (str). Pass normalize=True or normalize=False.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InvalidParameterError, NonFiniteError, ParameterTypeError

__all__ = ["check_bool", "check_integer", "check_real"]


def check_real(name: str, value: Any, fix: str, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a ``float`` if it is a finite real number in the range (``low``/``high``, closed unless
    ``low_open`` / ``high_open``); a 0-d tensor or array counts as a number."""
    if hasattr(value, "ndim") and getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterTypeError(f"{name} must be a number, got {value!r} ({type(value).__name__}). {fix}")
    number = float(value)
    if not math.isfinite(number):
        raise NonFiniteError(f"{name} must be a finite number, got {value!r}. {fix}")
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if below or above:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise InvalidParameterError(f"{name} must be in {lo}, {hi}, got {value!r}. {fix}")
    return number


def check_integer(name: str, value: Any, fix: str, *, minimum: int | None = None) -> int:
    """``value`` as an ``int`` if it is a whole number (Python or numpy integer, not a bool) ``>= minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(f"{name} must be an integer, got {value!r} ({type(value).__name__}). {fix}")
    if minimum is not None and value < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {value!r}. {fix}")
    return int(value)


def check_bool(name: str, value: Any, fix: str) -> bool:
    """``value`` as a ``bool`` if it is ``True`` or ``False`` (or a numpy bool)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterTypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__}). {fix}")
    return bool(value)
