"""How a fitted :class:`~hf_saerl.audit.PreferenceAudit` is written to a folder and read back: no pickle.

``PreferenceAudit.save_pretrained(dir)`` (``huggingface_hub.ModelHubMixin``, as the estimators) writes

- ``config.json``: the constructor parameters, without the encoder;
- ``audit.json``: format version, hf_saerl version, ``n_pairs`` / ``d_sae``, region names, the statistics
  table's text and list columns, the encoder's ``config()`` (to re-encode; the encoder itself is not saved);
- ``audit.safetensors``: the pooled features of each side (CSR as ``<name>.data`` / ``.indices`` / ``.indptr``),
  the per-pair disparities, the regions, the concepts (latent ids and offsets, support), the numeric
  statistics columns, the per-pair digests and token counts;
- ``texts.json`` (when the audit kept them): the chosen / rejected texts the report quotes;
- ``README.md``: a card with the summary.

:func:`load_audit` checks everything it reads (format version no newer than :data:`FORMAT_VERSION`, shapes,
CSR structure, ids in range) and refuses a damaged or tampered folder with a
:class:`~hf_saerl.errors.BundleError` naming the file, so a loaded audit gives a bit-identical report,
statistics and margins.

Example:
    >>> import numpy as np, scipy.sparse as sp, tempfile
    >>> from hf_saerl.audit import PreferenceAudit
    >>> c = sp.csr_matrix(np.tile([[1.0, 1.0], [1.0, 0.0]], (20, 1)))
    >>> r = sp.csr_matrix(np.tile([[0.0, 1.0], [1.0, 0.0]], (20, 1)))
    >>> audit = PreferenceAudit(n_regions=1, min_support=1).fit_features(c, c, r, r)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     audit.save_pretrained(folder)
    ...     loaded = PreferenceAudit.from_pretrained(folder)
    >>> loaded.report().to_markdown() == audit.report().to_markdown()
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._version import __version__
from ..core.files import REFETCH, fetch_file, read_arrays, take_array, write_arrays
from ..core.serialization import check_format_version, read_json, write_json
from ..errors import BundleError, HookMismatchError, InvalidParameterError, WidthMismatchError
from .concepts import LatentConcepts, firing

if TYPE_CHECKING:  # preference.py imports this module: the class is named for the checker only
    from .preference import PreferenceAudit

__all__ = ["AUDIT_CARD", "FITTED_PARAMS", "FORMAT_VERSION", "load_audit", "save_audit"]

#: Version of the on-disk layout written by :func:`save_audit`.
FORMAT_VERSION = 1
CONFIG_NAME, STATE_NAME, ARRAYS_NAME, TEXTS_NAME = "config.json", "audit.json", "audit.safetensors", "texts.json"
#: Constructor parameters that decided the fitted state: a load may not override them (fit again instead).
FITTED_PARAMS = (
    "activation_threshold",
    "frequency_threshold",
    "min_support",
    "similarity",
    "max_grouped_latents",
    "n_regions",
    "auto_range",
    "region_column",
    "z_threshold",
    "half_z_threshold",
    "encode_prompt",
    "top_k",
    "random_state",
)
_POOLED = ("chosen_max", "chosen_freq", "rejected_max", "rejected_freq", "prompt_max")

#: The ``model_card_template`` of a saved audit.
AUDIT_CARD = """---
{{ card_data }}
---

# hf_saerl preference-data audit

What a preference dataset (prompt / chosen / rejected) teaches, read through a sparse autoencoder (SAE) before
training (Anatomy of Post-Training, arXiv 2606.12360): the concepts the chosen responses carry more of
(chosen-leaning) or less of (rejected-leaning), per data region, with Welch z, Cohen's d and split-half consistency.

- {{ n_pairs }} pairs, SAE width `d_sae = {{ d_sae }}`, {{ n_concepts }} concepts, {{ n_regions }} region(s),
  {{ n_flagged }} flagged (region, concept) cells
- Saved by hf_saerl {{ version }} without pickle: `config.json` (parameters), `audit.json` (summary, encoder
  config), `audit.safetensors` (pooled features, disparities, statistics), `texts.json` (the texts the report quotes)

## Usage

```python
from hf_saerl.audit import PreferenceAudit, filter_pairs

audit = PreferenceAudit.from_pretrained("{{ repo_id | default('your-name/your-repo', true) }}")
print(audit.report(top=10).to_markdown())
kept, counts = filter_pairs(pairs, audit, threshold=0.5)  # pairs: the audited dataset, same rows and order
```
"""


def _card_values(audit: PreferenceAudit) -> dict[str, Any]:
    """The summary numbers :data:`AUDIT_CARD` fills in for a fitted ``audit``."""
    return {
        "n_pairs": audit.n_pairs_,
        "d_sae": audit.d_sae_,
        "n_concepts": audit.concepts_.n_concepts_,
        "n_regions": len(audit.region_names_),
        "n_flagged": int(audit.statistics_["flagged"].sum()),
        "version": __version__,
    }


def save_audit(audit: PreferenceAudit, directory: Path) -> None:
    """Write ``config.json``, ``audit.json``, ``audit.safetensors`` (and ``texts.json``) of a fitted ``audit``."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    saved = [name for name in _POOLED if getattr(audit, f"{name}_") is not None] + ["disparity"]
    for name in saved:
        X = getattr(audit, f"{name}_")
        arrays.update({f"{name}.data": X.data, f"{name}.indices": X.indices, f"{name}.indptr": X.indptr})
    groups = audit.concepts_.concepts_
    arrays["concepts.latents"] = np.concatenate(groups).astype(np.int64) if groups else np.zeros(0, np.int64)
    arrays["concepts.offsets"] = np.cumsum([0] + [len(g) for g in groups]).astype(np.int64)
    arrays["concepts.support"] = np.asarray(audit.concepts_.support_, dtype=np.int64)
    arrays["regions"] = np.asarray(audit.regions_, dtype=np.int64)
    if audit.pair_digests_ is not None:
        arrays["pair_digests"] = np.asarray(audit.pair_digests_, dtype=np.uint64)
    for side, counts in (audit.n_tokens_ or {}).items():
        arrays[f"n_tokens.{side}"] = np.asarray(counts)
    stats = audit.statistics_
    text_columns = {}
    for column in stats.columns:
        if pd.api.types.is_numeric_dtype(stats[column]):  # numbers and booleans: exact, NaN and inf included
            arrays[f"statistics.{column}"] = stats[column].to_numpy()
        else:  # region names, leanings, latent lists
            text_columns[column] = stats[column].tolist()
    write_arrays(directory / ARRAYS_NAME, arrays, "audit", FORMAT_VERSION)
    state = {
        "audit": type(audit).__name__,
        "format_version": FORMAT_VERSION,
        "hf_saerl_version": __version__,
        "n_pairs": int(audit.n_pairs_),
        "d_sae": int(audit.d_sae_),
        "n_concepts": int(audit.concepts_.n_concepts_),
        "region_names": list(audit.region_names_),
        "n_truncated": int(audit.n_truncated_),
        "matrices": saved,
        "statistics": {"columns": list(stats.columns), "n_rows": len(stats), "values": text_columns},
        "encoder": audit.encoder_config_,
        "texts": audit.texts_ is not None,
    }
    write_json(directory / STATE_NAME, state)
    if audit.texts_ is not None:
        write_json(directory / TEXTS_NAME, {"chosen": audit.texts_[0], "rejected": audit.texts_[1]})
    params = {k: v for k, v in audit.get_params(deep=False).items() if k != "encoder"}
    write_json(directory / CONFIG_NAME, params, nonfinite="raise")


def load_audit(
    cls: type[PreferenceAudit],
    model_id: str,
    *,
    encoder: Any = None,
    subfolder: str | None = None,
    params: Mapping[str, Any] | None = None,
    **hub_kwargs: Any,
) -> PreferenceAudit:
    """A fitted ``cls`` (``PreferenceAudit``) read from the folder / Hub repo ``model_id`` (``/subfolder``).

    ``encoder`` is checked against the saved SAE width (:class:`~hf_saerl.errors.WidthMismatchError`) and hook
    (:class:`~hf_saerl.errors.HookMismatchError`); ``params`` override saved parameters other than
    :data:`FITTED_PARAMS`.
    """
    expected = [CONFIG_NAME, STATE_NAME, ARRAYS_NAME]

    def fetch(filename: str) -> Path:
        return fetch_file(model_id, filename, expected=expected, owner=cls.__name__, subfolder=subfolder, **hub_kwargs)

    config = read_json(fetch(CONFIG_NAME), f"the {cls.__name__}'s parameters", REFETCH)
    state_path = fetch(STATE_NAME)
    state = read_json(state_path, f"the fitted {cls.__name__}", REFETCH)
    if state.get("audit") != cls.__name__:
        raise BundleError(
            f"{state_path} does not hold a saved {cls.__name__} (found {state.get('audit')!r}). Point "
            f"from_pretrained at a folder written by {cls.__name__}.save_pretrained."
        )
    check_format_version(state.get("format_version"), FORMAT_VERSION, state_path, state.get("hf_saerl_version"))
    arrays_path = fetch(ARRAYS_NAME)
    arrays, source = read_arrays(arrays_path), str(arrays_path)
    n = _field(state, "n_pairs", int, state_path)
    d = _field(state, "d_sae", int, state_path)
    region_names = _field(state, "region_names", list, state_path)
    texts = None
    if _field(state, "texts", bool, state_path):
        texts_path = fetch(TEXTS_NAME)
        saved_texts = read_json(texts_path, "the audited texts", REFETCH)
        texts = (_texts(saved_texts, "chosen", n, texts_path), _texts(saved_texts, "rejected", n, texts_path))
    audit = cls(encoder, **_params(cls, config, params or {}))
    _check_encoder(encoder, d, state.get("encoder"), state_path)

    matrices = _field(state, "matrices", list, state_path)
    for name in ("chosen_max", "chosen_freq", "rejected_max", "rejected_freq", "disparity"):
        if name not in matrices:
            raise BundleError(f"{state_path} lists no {name!r} matrix; the file is corrupt. {REFETCH}")
    pooled = {name: _csr(arrays, name, (n, d), source) for name in _POOLED if name in matrices}
    concepts = _concepts(arrays, d, audit, source)
    disparity = _csr(arrays, "disparity", (n, concepts.n_concepts_), source)
    regions = take_array(arrays, "regions", (n,), source)
    if n and (regions.min() < 0 or regions.max() >= len(region_names)):
        raise BundleError(f"{source}: region ids outside [0, {len(region_names)}); the file is corrupt. {REFETCH}")
    digests = take_array(arrays, "pair_digests", (n,), source) if "pair_digests" in arrays else None
    n_tokens = {
        side: take_array(arrays, f"n_tokens.{side}", (n,), source)
        for side in ("chosen", "rejected")
        if f"n_tokens.{side}" in arrays
    } or None

    audit.chosen_max_, audit.chosen_freq_ = pooled["chosen_max"], pooled["chosen_freq"]
    audit.rejected_max_, audit.rejected_freq_ = pooled["rejected_max"], pooled["rejected_freq"]
    audit.prompt_max_ = pooled.get("prompt_max")
    audit.n_pairs_, audit.d_sae_ = n, d
    audit.chosen_fires_ = firing(
        audit.chosen_max_, audit.chosen_freq_, audit.activation_threshold, audit.frequency_threshold
    )
    audit.rejected_fires_ = firing(
        audit.rejected_max_, audit.rejected_freq_, audit.activation_threshold, audit.frequency_threshold
    )
    audit.concepts_, audit.disparity_ = concepts, disparity
    audit.regions_, audit.region_names_ = regions, [str(name) for name in region_names]
    audit.texts_ = texts
    audit.pair_digests_, audit.n_tokens_ = digests, n_tokens
    audit.n_truncated_ = _field(state, "n_truncated", int, state_path)
    audit.encoder_config_ = state.get("encoder")
    audit.statistics_ = _statistics(arrays, _field(state, "statistics", dict, state_path), source)
    return audit


# ---------------------------------------------------------------------- parts
def _field(state: Mapping[str, Any], key: str, kind: type, path: Path) -> Any:
    value = state.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BundleError(
            f"{path}: {key!r} should be a {kind.__name__}, found {value!r}; the file is corrupt. {REFETCH}"
        )
    return value


def _params(cls: type[PreferenceAudit], config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Saved constructor parameters (tuples restored), with the allowed ``overrides`` applied."""
    names = [p for p in cls._get_param_names() if p != "encoder"]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise InvalidParameterError(f"Unknown parameter(s) {unknown}; valid: {names}.")
    defaults = cls().get_params(deep=False)
    params = {}
    for key in names:
        value = config.get(key, defaults[key])
        params[key] = tuple(value) if isinstance(defaults[key], tuple) and isinstance(value, list) else value
    changed = sorted(k for k in overrides if k in FITTED_PARAMS and overrides[k] != params[k])
    if changed:
        raise InvalidParameterError(
            f"{changed} decided the saved audit's statistics, so they cannot change on load. "
            "Load it as saved, or fit a new audit with the new values."
        )
    return {**params, **overrides}


def _check_encoder(encoder: Any, d_sae: int, saved: Any, path: Path) -> None:
    if encoder is None:
        return
    width = getattr(encoder, "d_sae", d_sae)
    if width != d_sae:
        raise WidthMismatchError(
            f"The encoder's SAE has d_sae={width}, but the audit in {path} was fitted at "
            f"d_sae={d_sae}. Pass the encoder the audit was made with (its config is the "
            "audit's encoder_config_), or audit the data again with this encoder."
        )
    hook = saved.get("hook_name") if isinstance(saved, Mapping) else None
    if hook and getattr(encoder, "hook_name", hook) != hook:
        raise HookMismatchError(
            f"The encoder reads {encoder.hook_name!r}, but the audit in {path} was fitted at "
            f"{hook!r}. Pass an encoder on {hook!r}, or audit the data again with this encoder."
        )


def _csr(arrays: Mapping[str, np.ndarray], name: str, shape: tuple[int, int], source: str) -> sp.csr_matrix:
    data = take_array(arrays, f"{name}.data", None, source)
    indices = take_array(arrays, f"{name}.indices", data.shape, source)
    indptr = take_array(arrays, f"{name}.indptr", (shape[0] + 1,), source)
    try:
        X = sp.csr_matrix((data, indices, indptr), shape=shape)
        X.check_format(full_check=True)
    except ValueError as e:
        raise BundleError(f"{source}: the {name!r} matrix is malformed ({e}); the file is corrupt. {REFETCH}") from None
    return X


def _concepts(arrays: Mapping[str, np.ndarray], d_sae: int, audit: Any, source: str) -> LatentConcepts:
    offsets = take_array(arrays, "concepts.offsets", None, source)
    latents = take_array(arrays, "concepts.latents", None, source)
    support = take_array(arrays, "concepts.support", (d_sae,), source)
    if (
        offsets.ndim != 1
        or len(offsets) < 1
        or offsets[0] != 0
        or np.any(np.diff(offsets) < 1)
        or offsets[-1] != len(latents)
        or (len(latents) and (latents.min() < 0 or latents.max() >= d_sae))
    ):
        raise BundleError(
            f"{source}: the concepts' latent ids or offsets are malformed; the file is corrupt. {REFETCH}"
        )
    groups = [latents[start:stop].copy() for start, stop in pairwise(offsets)]
    return LatentConcepts(audit.min_support, audit.similarity, audit.max_grouped_latents)._set_groups(
        groups, support, d_sae
    )


def _statistics(arrays: Mapping[str, np.ndarray], spec: Mapping[str, Any], source: str) -> pd.DataFrame:
    columns, n_rows, values = spec.get("columns"), spec.get("n_rows"), spec.get("values")
    if not isinstance(columns, list) or not isinstance(n_rows, int) or not isinstance(values, dict):
        raise BundleError(f"{source}: the statistics table's description is malformed; the file is corrupt. {REFETCH}")
    data = {}
    for column in columns:
        if column in values:
            if not isinstance(values[column], list) or len(values[column]) != n_rows:
                raise BundleError(
                    f"{source}: statistics column {column!r} should hold {n_rows} values; the file is "
                    f"corrupt. {REFETCH}"
                )
            data[column] = values[column]
        else:
            data[column] = take_array(arrays, f"statistics.{column}", (n_rows,), source)
    return pd.DataFrame(data, columns=columns)


def _texts(texts: Mapping[str, Any], side: str, n: int, path: Path) -> list[Any]:
    values = texts.get(side)
    if not isinstance(values, list) or len(values) != n:
        raise BundleError(f"{path}: the {side!r} texts should be {n} values; the file is corrupt. {REFETCH}")
    return values
