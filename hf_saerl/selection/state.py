"""A selector's saved state: the arrays and JSON meta of ``state_dict``, their checks on load, the safetensors file."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import InvalidParameterError, RowMismatchError
from .config import SelectionConfig
from .refit import PendingRefit

_STATE_FORMAT = "hf_saerl.selection/1"
#: the selector's per-prompt arrays, saved under their attribute names
_ARRAYS = ("successes", "trials", "last_step", "successes_total", "trials_total", "prior_at_first", "first_refit")


def _state_dict(selector: Any) -> dict[str, Any]:
    """The per-prompt arrays (copies), the proxy's arrays and a JSON string ``"meta"`` of ``selector``."""
    state: dict[str, Any] = {name: getattr(selector, name).copy() for name in _ARRAYS}
    pending = None
    if selector.proxy is not None:
        state.update(selector.proxy.state_arrays())
    if selector.pending_refit is not None:  # waits for a running refit: the resumed run swaps in the same one
        arrays, pending = selector.pending_refit.state()
        state.update(arrays)
    state["meta"] = json.dumps(
        {
            "format": _STATE_FORMAT,
            "n_rows": selector.n_rows,
            "step": selector.step,
            "n_updates": selector.n_updates,
            "n_refits": selector.n_refits,
            "residual_var": selector.residual_var,
            "config": selector.config.to_dict(),
            "has_proxy": selector.proxy is not None,
            "pending_refit": pending,
        }
    )
    return state


def _load_state_dict(selector: Any, state: dict[str, Any]) -> None:
    """Set ``selector``'s config, arrays, proxy arrays and counters from ``state``, after checking it is a selector
    state of the same pool, built the same way (with a proxy or without)."""
    meta = json.loads(state["meta"])
    if meta.get("format") != _STATE_FORMAT:
        raise InvalidParameterError(
            f"Not a selector state (format {meta.get('format')!r}, expected "
            f"{_STATE_FORMAT!r}). Pass what state_dict() returned."
        )
    if meta["n_rows"] != selector.n_rows:
        raise RowMismatchError(
            f"The state is of a pool of {meta['n_rows']} prompts, this selector has "
            f"{selector.n_rows}. Build the selector over the same dataset."
        )
    if meta["has_proxy"] != (selector.proxy is not None):
        raise InvalidParameterError(
            "The state was saved "
            + ("with" if meta["has_proxy"] else "without")
            + " a proxy, and this selector differs. Build it the same way (from_probe or "
            "not) before loading."
        )
    selector.config = SelectionConfig(**meta["config"])
    for name in _ARRAYS:
        arr = np.asarray(state[name])
        if arr.shape != (selector.n_rows,):
            raise RowMismatchError(f"State array {name!r} has shape {arr.shape}, expected ({selector.n_rows},).")
        setattr(selector, name, arr.astype(getattr(selector, name).dtype, copy=True))
    if selector.proxy is not None:
        selector.proxy.load_state_arrays(state)
    pending = meta.get("pending_refit")
    selector.pending_refit = None if pending is None else PendingRefit.from_state(state, pending, selector.proxy)
    selector.step, selector.n_updates, selector.n_refits = meta["step"], meta["n_updates"], meta["n_refits"]
    selector.residual_var = float(meta["residual_var"])


def _write_state(state: dict[str, Any], path: Any) -> None:
    """Write a ``state_dict`` to ``path`` as safetensors, with its JSON meta in the header."""
    from safetensors.numpy import save_file

    save_file(
        {k: np.ascontiguousarray(v) for k, v in state.items() if k != "meta"},
        str(path),
        metadata={"meta": state["meta"]},
    )


def _read_state(path: Any) -> dict[str, Any]:
    """The ``state_dict`` that :func:`_write_state` wrote to ``path``."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    arrays: dict[str, Any] = dict(load_file(str(path)))
    with safe_open(str(path), framework="np") as f:
        arrays["meta"] = (f.metadata() or {})["meta"]
    return arrays
