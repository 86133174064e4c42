"""Checks every stage shares: is a value missing, is an estimator fitted, is a parameter one of its choices.

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
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["is_missing", "is_fitted", "check_fitted", "check_choice"]


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
