"""The exceptions ``hf_saerl`` raises on purpose, rooted in :class:`HfSaerlError`.

Each class also subclasses the built-in exception that the same check raised before, so code that catches
``ValueError`` or ``KeyError`` keeps working, and ``except HfSaerlError`` catches every refusal of the
library at once. The command line turns an :class:`HfSaerlError` into one line and exit code 1
(:class:`UsageError`: exit code 2); anything else is a bug and keeps its traceback.

Example:
    >>> from hf_saerl.errors import HfSaerlError, WidthMismatchError
    >>> try:
    ...     raise WidthMismatchError("features have width 8, the SAE has d_sae=16")
    ... except ValueError as err:  # still a ValueError
    ...     isinstance(err, HfSaerlError)
    True
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "HfSaerlError",
    "HookMismatchError",
    "InvalidParameterError",
    "MissingColumnError",
    "ModelNotFoundError",
    "NonFiniteError",
    "ParameterTypeError",
    "RowMismatchError",
    "ScheduleMismatchError",
    "UntrackedProgressError",
    "UsageError",
    "VerificationError",
    "WidthMismatchError",
]


class HfSaerlError(Exception):
    """Base class of every error ``hf_saerl`` raises deliberately."""


class InvalidParameterError(HfSaerlError, ValueError):
    """An argument or configuration value outside what the function accepts (wrong type, range or choice)."""


class ParameterTypeError(HfSaerlError, TypeError):
    """An argument of the wrong type (a float where an int is needed, one string where a list of texts is)."""


class MissingColumnError(HfSaerlError, KeyError):
    """A dataset lacks a column the step needs; the message lists the columns it has."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class WidthMismatchError(HfSaerlError, ValueError):
    """Features, an SAE, a model or a saved estimator disagree on a width (``d_sae``, ``d_in``, hidden size)."""


class HookMismatchError(HfSaerlError, ValueError):
    """An SAE's hook does not match the model, the encoder or the bundle it is used with."""


class NonFiniteError(HfSaerlError, ValueError):
    """A NaN or infinite number crossed an edge (an argument, a file, a label column, the activations)."""


class BundleError(HfSaerlError, ValueError):
    """A saved bundle (estimator, pipeline, audit) is malformed, tampered with, newer than this library, or
    reaches outside its folder; the message names the file."""


class ScheduleMismatchError(HfSaerlError, ValueError):
    """A curriculum state (resume point, exported order) was made by another schedule or other data."""


class UntrackedProgressError(HfSaerlError, RuntimeError):
    """A resume point was asked of an object that did not see the progress: DataLoader worker processes consumed
    the stream, and each holds its own position."""


class RowMismatchError(HfSaerlError, ValueError):
    """Per-row state fitted on one dataset met a dataset with other rows (another order, length or content)."""


class VerificationError(HfSaerlError, RuntimeError):
    """A verifier (reward function) raised, or returned something other than one reward per completion; the
    message names the verifier and the row, and the original exception is chained."""


class ModelNotFoundError(HfSaerlError, OSError):
    """A model (a folder, a GGUF file in it, or a Hub id) cannot be found or read; the message names it and the
    nearest known name (``"embedded"``, the model shipped on PyPI)."""


class UsageError(HfSaerlError, ValueError):
    """Bad command-line usage; the CLI exits with code 2."""
