"""Checks every stage shares: is a value missing, is an estimator fitted, is a parameter one of its choices, is a number
finite, whole, in range.

Checks of values crossing an edge (an argument, a config file, a safetensors file, the activations) return the value
as a plain Python ``float`` / ``int`` / ``bool`` (or the array itself) and otherwise raise an error naming the value,
the expectation and the fix given by the caller:

* :func:`check_real`: :class:`~hf_saerl.errors.ParameterTypeError` for a non-number (a string, a bool, a list),
  :class:`~hf_saerl.errors.NonFiniteError` for NaN or infinity, :class:`~hf_saerl.errors.InvalidParameterError`
  out of range;
* :func:`check_integer`: :class:`~hf_saerl.errors.InvalidParameterError` for anything but a whole number (a bool,
  ``2.0``, ``"0"``) or one below ``minimum``;
* :func:`check_bool`: :class:`~hf_saerl.errors.ParameterTypeError` for anything but ``True`` / ``False``;
* :func:`check_finite`: :class:`~hf_saerl.errors.NonFiniteError` when an array or tensor holds NaN or infinity,
  naming where it came from and how many entries (and the first rows) are bad.

"Is it fitted?" has one answer here: scikit-learn's ``check_is_fitted``, which asks the object's
``__sklearn_is_fitted__`` where it defines one. :func:`check_fitted` raises sklearn's ``NotFittedError``
naming the method that needed the fitted state and what to call first; :func:`is_fitted` is the same test
as a bool.

Example:
    >>> from hf_saerl.core.validation import check_choice, is_missing
    >>> is_missing(None), is_missing(float("nan")), is_missing(0.0)
    (True, True, False)
    >>> check_choice("pooling", "median", ("mean", "max"))
    Traceback (most recent call last):
    ...
    hf_saerl.errors.InvalidParameterError: pooling must be 'mean' or 'max'; got 'median'. Pass one of these.
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
    >>> check_finite(np.array([[1.0, np.nan], [0.0, 2.0]]), "the SAE weights W_enc", "Retrain the SAE.")
    Traceback (most recent call last):
    ...
    hf_saerl.errors.NonFiniteError: the SAE weights W_enc hold 1 NaN or infinite value(s) of 4 (first in row 0). Retrain the SAE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidParameterError, NonFiniteError, ParameterTypeError

__all__ = [
    "check_bool",
    "check_choice",
    "check_finite",
    "check_fitted",
    "check_integer",
    "check_real",
    "is_fitted",
    "is_missing",
]


def is_missing(value: Any) -> bool:
    """Whether ``value`` is missing: ``None``, or a float / numpy float NaN."""
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def is_fitted(estimator: Any) -> bool:
    """Whether ``estimator`` is fitted, by scikit-learn's ``check_is_fitted`` (the one test :func:`check_fitted` uses).

    Example:
        >>> from sklearn.linear_model import Ridge
        >>> is_fitted(Ridge()), is_fitted(Ridge().fit([[0.0], [1.0]], [0.0, 1.0]))
        (False, True)
    """
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def check_fitted(estimator: Any, method: str, first: str | None = None) -> None:
    """Raise ``sklearn.exceptions.NotFittedError`` unless ``estimator`` is fitted.

    The message names ``method`` (what was called), and what to call first: ``first``, else the class's
    ``fit_hint`` attribute where it has one (e.g. ``"fit(dataset) or fit_features(...)"``), else ``fit(...)``;
    and loading a fitted one with ``from_pretrained`` where the class has it.

    Example:
        >>> from sklearn.linear_model import Ridge
        >>> check_fitted(Ridge(), "predict")
        Traceback (most recent call last):
        ...
        sklearn.exceptions.NotFittedError: This Ridge is not fitted yet, so predict cannot run. Call fit(...) first.
    """
    from sklearn.utils.validation import check_is_fitted

    name = type(estimator).__name__
    how = f"Call {first or getattr(estimator, 'fit_hint', None) or 'fit(...)'} first"
    if hasattr(type(estimator), "from_pretrained"):
        how += f", or load a fitted one with {name}.from_pretrained(path)"
    message = f"This {name} is not fitted yet, so {method} cannot run. {how}."
    check_is_fitted(estimator, msg=message.replace("%", "%%"))


def check_choice(name: str, value: Any, choices: Sequence[Any], fix: str = "Pass one of these.") -> Any:
    """``value`` if it is one of ``choices``, else an :class:`~hf_saerl.errors.InvalidParameterError` naming
    ``name``, the choices, the value and ``fix``."""
    if value not in choices:
        listed = [repr(c) for c in choices]
        expected = listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} or {listed[-1]}"
        raise InvalidParameterError(f"{name} must be {expected}; got {value!r}. {fix}")
    return value


def check_real(
    name: str,
    value: Any,
    fix: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
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


def check_finite(values: Any, where: str, fix: str = "") -> Any:
    """``values`` (a numpy array, a torch tensor, or anything ``np.asarray`` takes) unchanged if every entry is
    finite, else a :class:`~hf_saerl.errors.NonFiniteError` naming ``where`` the numbers came from (e.g. ``"the
    activations at 'blocks.1.hook_resid_post'"``), how many entries are NaN or infinite, the first bad row, and
    ``fix``. A tensor is checked where it lives (no copy to the host); integer and bool arrays always pass."""
    if hasattr(values, "is_floating_point") and hasattr(values, "isfinite"):  # torch, without importing it
        if not (values.is_floating_point() or values.is_complex()):
            return values
        finite = values.isfinite()
        if bool(finite.all()):
            return values
        bad = (~finite).reshape(finite.shape[0], -1) if finite.ndim > 1 else ~finite
        rows = bad.any(-1).nonzero().flatten() if finite.ndim > 1 else bad.nonzero().flatten()
        n_bad, total, first = int((~finite).sum()), int(finite.numel()), int(rows[0])
    else:
        array = np.asarray(values)
        if not np.issubdtype(array.dtype, np.inexact):
            return values
        finite = np.isfinite(array)
        if finite.all():
            return values
        bad = ~finite
        rows = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(-1)) if bad.ndim > 1 else np.flatnonzero(bad)
        n_bad, total, first = int(bad.sum()), int(array.size), int(rows[0]) if rows.size else 0
    where_row = f" (first in row {first})" if getattr(finite, "ndim", 0) >= 1 else ""
    message = f"{where} hold {n_bad} NaN or infinite value(s) of {total}{where_row}."
    raise NonFiniteError(f"{message} {fix}".rstrip())
