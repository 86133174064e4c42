"""Which pairs an audit saw: a digest per pair, and the check that a dataset is the audited one (rows and order).

:meth:`PreferenceAudit.fit <hf_saerl.audit.PreferenceAudit.fit>` keeps one 64-bit digest of each pair's
(prompt, chosen, rejected), saved with the audit (``fit_features(..., pairs=...)`` keeps them too). The
interventions act on the audited rows in order, so :func:`check_rows` refuses a dataset of another length and,
when the dataset still has the pair columns and the audit has digests, one whose rows differ (filtered, shuffled
or edited since the audit). A dataset without the pair columns can only be checked by length, and a
``UserWarning`` says so.

Example:
    >>> from hf_saerl.audit.rows import pair_digests
    >>> d = pair_digests(["2+2?", "3+3?"], ["4", "6"], ["5", "7"])
    >>> d.dtype, len(set(d.tolist())), bool((d == pair_digests(["2+2?", "3+3?"], ["4", "6"], ["5", "7"])).all())
    (dtype('uint64'), 2, True)
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.columns import column_names
from ..core.validation import check_fitted
from ..errors import InvalidParameterError, MissingColumnError, RowMismatchError

__all__ = ["check_rows", "pair_digests"]


def pair_digests(prompts: Sequence[Any], chosen: Sequence[Any], rejected: Sequence[Any]) -> np.ndarray:
    """One ``uint64`` digest per pair of its (prompt, chosen, rejected) values (strings or chat message lists)."""
    out = np.empty(len(prompts), dtype=np.uint64)
    for i, row in enumerate(zip(prompts, chosen, rejected, strict=True)):
        text = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little")
    return out


def _digests_of_pairs(pairs: Any, columns: Sequence[str], features: Any) -> np.ndarray:
    """:func:`pair_digests` of ``pairs`` (a dataset with the prompt / chosen / rejected ``columns``, or a
    ``(prompts, chosen, rejected)`` tuple), refused unless it holds one pair per row of ``features``.

    Example:
        >>> _digests_of_pairs((["2+2?"], ["4"], ["5"]), ("prompt", "chosen", "rejected"), [[1.0, 0.0]]).shape
        (1,)
    """
    import scipy.sparse as sp

    names = column_names(pairs)
    if names is not None:
        missing = [c for c in columns if c not in names]
        if missing:
            fix = "Pass the dataset the features were pooled from, or a (prompts, chosen, rejected) tuple."
            raise MissingColumnError(f"pairs lacks the column(s) {missing}; it has {sorted(names)}. {fix}")
        pairs = tuple(list(pairs[c]) for c in columns)
    if not isinstance(pairs, (tuple, list)) or len(pairs) != 3:
        raise InvalidParameterError(
            "pairs must be a dataset with the pair columns or a (prompts, chosen, "
            f"rejected) tuple; got {type(pairs).__name__}."
        )
    n = sp.csr_matrix(features).shape[0]
    if any(len(side) != n for side in pairs):
        raise RowMismatchError(
            f"pairs has {[len(side) for side in pairs]} prompts/chosen/rejected but the "
            f"features have {n} rows. Pass the pairs the features were pooled from, in "
            "the same order."
        )
    return pair_digests(*pairs)


def check_rows(dataset: Any, audit: Any, method: str) -> None:
    """Refuse (naming ``method``) a ``dataset`` that is not the one ``audit`` saw.

    An unfitted audit is sklearn's ``NotFittedError``; another number of rows, or (with digests and the pair
    columns present) other rows or another order, a :class:`~hf_saerl.errors.RowMismatchError`; digests but no
    pair columns to compare them with, a ``UserWarning``.
    """
    check_fitted(audit, method)
    fix = "Pass the dataset that was audited (same rows, same order), before any filter or shuffle, or audit this one."
    if len(dataset) != audit.n_pairs_:
        raise RowMismatchError(f"The dataset has {len(dataset)} rows but the audit saw {audit.n_pairs_} pairs. {fix}")
    columns = [audit.prompt_column, audit.chosen_column, audit.rejected_column]
    names = column_names(dataset) or []
    if audit.pair_digests_ is None:
        return
    absent = [c for c in columns if c not in names]
    if absent:
        warnings.warn(
            f"{method}: the dataset lacks {absent}, so only its length ({len(dataset)} rows) could be "
            "checked against the audited pairs, not their identity or order. Pass the dataset with the "
            "prompt/chosen/rejected columns (remove them after the intervention), so a shuffled or edited "
            "copy is refused.",
            UserWarning,
            stacklevel=3,
        )
        return
    found = pair_digests(*(list(dataset[c]) for c in columns))
    differ = np.flatnonzero(found != audit.pair_digests_)
    if len(differ):
        raise RowMismatchError(
            f"{len(differ)} of the dataset's {len(found)} rows differ from the audited pairs "
            f"(first: row {int(differ[0])}), in {columns}: the rows were reordered or edited since "
            f"the audit. {fix}"
        )
