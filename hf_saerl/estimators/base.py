"""What hf_saerl's estimators share: reading SAE features and labels, and saving without pickle.

:class:`SAEEstimator` is the base of :class:`~hf_saerl.estimators.probes.QualityProbe`,
:class:`~hf_saerl.estimators.probes.DifficultyProbe` and :class:`~hf_saerl.estimators.clustering.SAEClusterer`. It gives them

* **input at the edge**: a ``datasets.Dataset`` or batch dict with the sparse ``sae_indices`` /
  ``sae_values`` columns (turned into CSR by :func:`~hf_saerl.encoding.sparse.sparse_matrix`), or a matrix
  (scipy sparse or 2-D array) whose width must equal ``d_sae``; a clear error names both widths
  and the fix otherwise;
* the fitted :class:`~hf_saerl.estimators.transforms.FeatureTransform`;
* ``Dataset.map(estimator, batched=True)`` support through ``__call__`` and a cheap, deterministic
  fingerprint of (parameters, fitted arrays);
* **serialisation** through ``huggingface_hub.ModelHubMixin``: ``save_pretrained(dir)`` writes

  - ``config.json``: the constructor parameters (``get_params()``, so ``set_params`` is honoured),
  - ``<kind>.json``: format version, hf_saerl/sklearn versions, ``d_sae``, the fitted
    hyper-parameters, the transform steps and the fit-time metrics,
  - ``<kind>.safetensors``: every fitted array (coefficients, centroids, scaler statistics),
  - ``README.md``: a model card with the metrics,

  and ``from_pretrained(dir_or_repo_id)`` restores an estimator whose predictions are bit-identical.
  Nothing is ever unpickled and unexpected files are ignored. ``_save_pretrained(dir)`` and
  ``_from_pretrained(model_id=dir)`` work on any folder, so a pipeline can nest estimators in subfolders
  (``_from_pretrained(model_id=repo_id, subfolder="quality")`` for a Hub repo).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from huggingface_hub import ModelHubMixin, hf_hub_download
from huggingface_hub.errors import RemoteEntryNotFoundError
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from ..core.columns import SAE_INDICES, SAE_N_TOKENS, SAE_VALUES
from .transforms import FeatureTransform, TransformSpec, row_nnz
from ..core.fingerprint import Fingerprinted, stable_hash
from ..encoding.sparse import _column_names, sparse_matrix

logger = logging.getLogger(__name__)

#: Version of the on-disk layout written by :meth:`SAEEstimator.save_pretrained`.
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"

__all__ = ["SAEEstimator", "FORMAT_VERSION", "card_template"]


def card_template(title: str, description: str) -> str:
    """A ``model_card_template`` for an estimator: YAML header, description, metrics and usage."""
    return (
        "---\n{{ card_data }}\n---\n\n"
        f"# {title}\n\n{description}\n\n"
        "- Estimator: `hf_saerl.{{ estimator }}` on SAE features of width `d_sae = {{ d_sae }}`\n"
        "- Saved by hf_saerl {{ version }} without pickle: `config.json` (constructor parameters), "
        "`{{ kind }}.json` (fitted hyper-parameters and metrics), `{{ kind }}.safetensors` (weights)\n\n"
        "## Metrics measured at fit time\n\n{{ metrics_table }}\n\n"
        "## Usage\n\n```python\nfrom hf_saerl import {{ estimator }}\n\n"
        "est = {{ estimator }}.from_pretrained(\"{{ repo_id | default('your-name/your-repo', true) }}\")\n"
        "dataset = dataset.map(est, batched=True)  # needs the sae_indices / sae_values columns\n```\n\n"
        "## Parameters\n\n```json\n{{ params }}\n```\n"
    )


class SAEEstimator(Fingerprinted, BaseEstimator, ModelHubMixin, library_name="hf_saerl",
                   tags=["hf_saerl", "sparse-autoencoder"]):
    """Base class; see the module docstring.

    Subclasses store the constructor parameters ``d_sae``, ``transform``, ``indices_column``,
    ``values_column`` and ``n_tokens_column``; set ``kind`` (file stem) and ``_state_keys`` (fitted
    JSON scalars); and implement ``fit`` (reading the input with ``_read_features``), ``_fit_core``
    (fitting on a matrix, also used for the baseline), ``_predict_columns``, ``_output_dtypes``,
    ``_fitted_arrays`` and ``_restore``.
    """

    kind: ClassVar[str] = "estimator"
    _state_keys: ClassVar[tuple[str, ...]] = ()
    d_sae: int
    transform: TransformSpec
    indices_column: str
    values_column: str
    n_tokens_column: str

    # ------------------------------------------------------------------ reading the input
    def _validate_common(self) -> None:
        if isinstance(self.d_sae, bool) or not isinstance(self.d_sae, (int, np.integer)) or self.d_sae <= 0:
            raise ValueError(f"d_sae must be a positive int (the SAE width); got {self.d_sae!r}.")
        FeatureTransform(self.transform)  # validates the spec

    def _steps_need_n_tokens(self) -> bool:
        return (getattr(self, "transform_", None) or FeatureTransform(self.transform)).needs_n_tokens

    def _read_features(self, data: Any, n_tokens: Any = None) -> tuple[Any, np.ndarray | None]:
        """``(X, n_tokens)`` from a Dataset / batch dict (sparse columns) or a matrix; validates the width."""
        name = type(self).__name__
        if _is_matrix(data):
            X = data if sp.issparse(data) else np.asarray(data)
            if X.ndim != 2:
                raise ValueError(f"{name} needs a 2-D feature matrix (n_rows, d_sae); got shape {X.shape}.")
            if X.shape[1] != self.d_sae:
                raise ValueError(
                    f"X has {X.shape[1]} columns but this {name} works on SAE features of width d_sae={self.d_sae}. "
                    f"Use features from the SAE the estimator was built for (width {self.d_sae}), or construct "
                    f"it with d_sae={X.shape[1]} and fit it again."
                )
            X = sp.csr_matrix(X) if sp.issparse(X) else X
        else:
            try:
                X = sparse_matrix(data, self.d_sae, indices_column=self.indices_column, values_column=self.values_column)
            except ValueError as e:
                if "outside" not in str(e):
                    raise
                raise ValueError(
                    f"This {name} works on SAE features of width d_sae={self.d_sae}, but the data does not fit: {e} "
                    f"A fitted or loaded {name} only applies to features of the SAE it was fitted on (width "
                    f"{self.d_sae}): encode the data with that SAE, or fit a new {name} with the data's d_sae."
                ) from None
            if self._steps_need_n_tokens() and n_tokens is None:
                n_tokens = read_column(data, self.n_tokens_column, "token counts (for the 'length' transform step)")
        finite = np.isfinite(X.data if sp.issparse(X) else X)
        if not finite.all():
            bad = int((~finite).sum())
            raise ValueError(f"The SAE features hold {bad} NaN or infinite value(s); re-encode those rows (check the "
                             f"model's dtype for overflow) or drop them before using this {name}.")
        if n_tokens is not None:
            n_tokens = np.asarray(n_tokens, dtype=np.float64).reshape(-1)
        return X, n_tokens

    def _features_for_predict(self, data: Any, n_tokens: Any = None) -> Any:
        """Fitted check + read + transform: the matrix the fitted weights apply to."""
        check_is_fitted(self)
        X, n_tokens = self._read_features(data, n_tokens)
        return self.transform_.transform(X, n_tokens)

    def _fit_transform(self, X: Any, n_tokens: np.ndarray | None) -> Any:
        self.transform_ = FeatureTransform(self.transform)
        return self.transform_.fit_transform(X, n_tokens)

    def _baseline_fit(self, data: Any, baseline: Any, keep: np.ndarray | None, *fit_args: Any,
                      **overrides: Any) -> dict[str, Any]:
        """Fit a clone of ``self`` on a dense baseline feature column (standardised, no SAE transform)
        with the same labels, and return its metrics tagged with the column and width."""
        from sklearn.preprocessing import StandardScaler

        if isinstance(baseline, str):
            if _is_matrix(data):
                raise ValueError(f"baseline={baseline!r} names a column, but the data is a matrix; pass the baseline "
                                 "features as a 2-D array instead.")
            Xb, source = dense_column(data, baseline), baseline
        else:
            Xb, source = np.asarray(baseline, dtype=np.float64), "array"
            if Xb.ndim != 2 or Xb.shape[0] != _n_rows(data):
                raise ValueError(f"baseline array must have shape (n_rows={_n_rows(data)}, width); got {Xb.shape}.")
        if keep is not None:
            Xb = Xb[keep]
        Xb = StandardScaler().fit_transform(Xb)
        est = clone(self).set_params(d_sae=Xb.shape[1], transform=None, **overrides)
        est._fit_core(Xb, *fit_args)
        return {"column": source, "width": int(Xb.shape[1]), **est.metrics_}

    # ------------------------------------------------------------------ datasets integration
    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """The new columns for one batch: ``dataset.map(estimator, batched=True)``."""
        return self._predict_columns(self._features_for_predict(batch))

    @property
    def features(self):
        """The ``datasets.Features`` of the columns this estimator adds."""
        from datasets import Features, Value

        return Features({col: Value(dtype) for col, dtype in self._output_dtypes().items()})

    @property
    def fingerprint(self) -> str:
        """A short digest of the parameters and fitted arrays, used by ``datasets``' cache."""
        identity: dict[str, Any] = {"estimator": type(self).__name__, "params": jsonable(self.get_params(deep=False))}
        if _is_fitted(self):
            digest = hashlib.sha256()
            for key, arr in sorted(self._all_arrays().items()):
                arr = np.ascontiguousarray(arr)
                digest.update(f"{key}:{arr.dtype.str}:{arr.shape}".encode())
                digest.update(arr.tobytes())
            identity["arrays"] = digest.hexdigest()
            identity["state"] = jsonable(self._fitted_state())
            identity["transform"] = self.transform_.steps_
        return stable_hash(identity)

    # ------------------------------------------------------------------ subclass hooks
    def _fit_core(self, X: Any, *args: Any) -> "SAEEstimator":  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict_columns(self, Xt: Any) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _output_dtypes(self) -> dict[str, str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fitted_arrays(self) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _restore(self, arrays: dict[str, np.ndarray], source: str) -> None:  # pragma: no cover - abstract
        """Set the fitted arrays from ``arrays`` (checked with :func:`take_array`) and validate the state."""
        raise NotImplementedError

    def _fitted_state(self) -> dict[str, Any]:
        """The JSON-able fitted scalars (``_state_keys``), saved in ``<kind>.json``."""
        return {key: jsonable(getattr(self, key)) for key in self._state_keys}

    def _all_arrays(self) -> dict[str, np.ndarray]:
        return {**self._fitted_arrays(), **self.transform_.state_arrays()}

    # ------------------------------------------------------------------ saving
    def _save_pretrained(self, save_directory: Path) -> None:
        """Write ``config.json``, ``<kind>.json`` and ``<kind>.safetensors`` into ``save_directory``."""
        from safetensors.numpy import save_file

        from .. import __version__

        check_is_fitted(self)
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.ascontiguousarray(v) for k, v in self._all_arrays().items()}
        save_file(arrays, str(directory / f"{self.kind}.safetensors"),
                  metadata={"format": f"hf_saerl/{self.kind}", "format_version": str(FORMAT_VERSION)})
        state = {
            "estimator": type(self).__name__,
            "format_version": FORMAT_VERSION,
            "hf_saerl_version": __version__,
            "sklearn_version": _sklearn_version(),
            "d_sae": int(self.d_sae),
            "transform": self.transform_.steps_,
            "fitted": self._fitted_state(),
            "metrics": self.metrics_,
        }
        _write_json(directory / f"{self.kind}.json", state)
        _write_json(directory / CONFIG_NAME, self.get_params(deep=False))

    def generate_model_card(self, *args: Any, **kwargs: Any):
        from .. import __version__

        values = {
            "estimator": type(self).__name__,
            "kind": self.kind,
            "d_sae": self.d_sae,
            "version": __version__,
            "metrics_table": metrics_markdown(getattr(self, "metrics_", None)),
            "params": json.dumps(jsonable(self.get_params(deep=False)), indent=2, sort_keys=True),
            **kwargs,
        }
        return super().generate_model_card(*args, **values)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> "SAEEstimator":
        """Load a saved estimator from a local folder or a Hub repo id (``huggingface_hub`` keyword
        arguments such as ``revision``, ``token``, ``local_files_only`` apply); other keyword arguments
        override saved constructor parameters."""
        _check_path_or_repo_id(str(pretrained_model_name_or_path))
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        subfolder: str | None = None,
        **model_kwargs: Any,
    ) -> "SAEEstimator":
        """Load from a local folder or a Hub repo id (optionally a ``subfolder`` of it).

        ``model_kwargs`` override the saved constructor parameters (e.g. output column names)."""
        expected = [CONFIG_NAME, f"{cls.kind}.json", f"{cls.kind}.safetensors"]

        def fetch(filename: str) -> Path:
            return _fetch(str(model_id), filename, expected, cls.__name__, subfolder=subfolder, revision=revision,
                          cache_dir=cache_dir, force_download=force_download, local_files_only=local_files_only,
                          token=token)

        config = _read_json(fetch(CONFIG_NAME))
        state_path = fetch(f"{cls.kind}.json")
        state = _read_json(state_path)
        _check_state(cls, state, state_path)
        weights_path = fetch(f"{cls.kind}.safetensors")
        arrays = _read_arrays(weights_path)

        init_params = cls._get_param_names()
        defaults = cls._hub_mixin_jsonable_default_values
        params = {k: v for k, v in config.items() if k in init_params}
        params.update(model_kwargs)
        params = {k: _as_default_type(v, defaults.get(k)) for k, v in params.items()}
        estimator = cls(**params)
        saved_width = state.get("d_sae")
        if saved_width != estimator.d_sae:
            raise ValueError(
                f"{state_path} was saved for SAE width d_sae={saved_width}, but d_sae={estimator.d_sae} was requested. "
                f"A fitted {cls.__name__} only works at the width it was fitted on: drop the d_sae override."
            )
        estimator.transform_ = FeatureTransform.from_state(state["transform"], arrays, estimator.d_sae)
        fitted = state.get("fitted") or {}
        missing = [key for key in cls._state_keys if key not in fitted]
        if missing:
            raise ValueError(f"{state_path} lacks the fitted value(s) {missing}; the file is corrupt or incomplete.")
        for key in cls._state_keys:
            setattr(estimator, key, fitted[key])
        estimator._restore(arrays, str(weights_path))
        estimator.metrics_ = state.get("metrics") or {}
        estimator.n_features_in_ = estimator.d_sae
        return estimator


# ---------------------------------------------------------------------- input helpers
def _is_matrix(data: Any) -> bool:
    return sp.issparse(data) or isinstance(data, np.ndarray)


def _is_fitted(estimator: Any) -> bool:
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def _n_rows(data: Any) -> int:
    if _is_matrix(data):
        return data.shape[0]
    if isinstance(data, Mapping):
        return len(next(iter(data.values()))) if data else 0
    return len(data)


def read_column(data: Any, column: str, what: str) -> list[Any]:
    """The values of ``column`` as a list; a clear ``KeyError`` listing the columns found otherwise."""
    names = _column_names(data)
    if names is None or column not in names:
        found = sorted(names) if names is not None else f"a {type(data).__name__}, not a dataset"
        raise KeyError(f"Missing column {column!r} holding the {what}; found {found}. Pass the right column name.")
    return list(data[column])


def read_labels(data: Any, y: Any, label_column: str | None, what: str = "labels") -> list[Any]:
    """Labels from ``y`` (array-like) or from ``data[label_column]``; raw, missing values kept."""
    if y is not None and label_column is not None:
        raise ValueError("Pass the labels either as y= or as label_column=, not both.")
    if label_column is not None:
        if _is_matrix(data):
            raise ValueError(f"label_column={label_column!r} needs a dataset; with a feature matrix pass the {what} as y=.")
        values = read_column(data, label_column, what)
    elif y is not None:
        values = y.tolist() if isinstance(y, np.ndarray) else list(y)
    else:
        names = _column_names(data)
        hint = f" (columns found: {sorted(names)})" if names is not None else ""
        raise ValueError(f"No {what}: pass label_column='<column>'{hint} or y=<array>.")
    if len(values) != _n_rows(data):
        raise ValueError(f"Got {len(values)} {what} for {_n_rows(data)} rows of features.")
    return values


def clean_labels(values: Sequence[Any], name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(labels, keep_mask, n_dropped)``: drops missing labels (None or NaN) with a warning;
    an error when every label is missing."""
    missing = np.fromiter((is_missing(v) for v in values), dtype=bool, count=len(values))
    n_dropped = int(missing.sum())
    if n_dropped == len(values):
        raise ValueError(
            f"All {len(values)} labels in {name!r} are missing (None or NaN); nothing to fit. Check the label column "
            "and that the labelled rows were joined in."
        )
    if n_dropped:
        warnings.warn(
            f"Dropped {n_dropped} of {len(values)} rows whose label {name!r} is missing (None or NaN); using the other "
            f"{len(values) - n_dropped}. Fill or filter them first to silence this warning.",
            UserWarning, stacklevel=3,
        )
    kept = [v for v, m in zip(values, missing) if not m]
    return np.asarray(kept), ~missing, n_dropped


def is_missing(value: Any) -> bool:
    """None, or a float / numpy float NaN."""
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def warn_empty_rows(X: Any, policy: str) -> int:
    """Warn (with the count) about rows with no active latent; returns the count."""
    n_empty = int((row_nnz(X) == 0).sum())
    if n_empty:
        warnings.warn(
            f"{n_empty} of {X.shape[0]} rows have no active SAE latent (empty sae_indices); {policy} Check the "
            "encoder (empty or truncated texts, top_k) or filter these rows out first.",
            UserWarning, stacklevel=3,
        )
    return n_empty


def dense_column(data: Any, column: str) -> np.ndarray:
    """A column of fixed-length float lists as an ``(n, width)`` float64 array."""
    rows = read_column(data, column, "dense baseline features (fixed-length float lists)")
    lengths = {len(r) if isinstance(r, (list, tuple, np.ndarray)) else -1 for r in rows}
    if len(lengths) != 1 or -1 in lengths:
        raise ValueError(
            f"Baseline column {column!r} must hold fixed-length lists of floats (e.g. a mean activation per row); "
            f"found row lengths {sorted(lengths)[:5]}."
        )
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)


# ---------------------------------------------------------------------- JSON / metrics helpers
def jsonable(obj: Any) -> Any:
    """Numpy scalars/arrays to Python, tuples to lists, NaN/inf to None (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def metrics_markdown(metrics: Mapping[str, Any] | None) -> str:
    """A Markdown table of the metrics, with a baseline column when ``metrics["baseline"]`` exists."""
    if not metrics:
        return "_Not fitted._"
    baseline = metrics.get("baseline") or {}
    header = "| metric | SAE features |" + (f" baseline `{baseline.get('column')}` |" if baseline else "")
    lines = [header, "|---|---|" + ("---|" if baseline else "")]
    for key, value in metrics.items():
        if key == "baseline" or isinstance(value, (Mapping, list)):
            continue
        row = f"| {key} | {_fmt(value)} |"
        if baseline:
            row += f" {_fmt(baseline.get(key))} |"
        lines.append(row)
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def _as_default_type(value: Any, default: Any) -> Any:
    """JSON turns tuples into lists; give tuple-default parameters their tuple back."""
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    return value


# ---------------------------------------------------------------------- file helpers
def _fetch(model_id: str, filename: str, expected: list[str], estimator: str, *, subfolder: str | None,
           **hub_kwargs: Any) -> Path:
    if os.path.isdir(model_id):
        folder = Path(model_id) / subfolder if subfolder else Path(model_id)
        path = folder / filename
        if not path.is_file():
            found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
            raise FileNotFoundError(
                f"{path} is missing. A saved {estimator} folder holds {expected}; found {found}. Write it with "
                f"{estimator}.save_pretrained(dir), or point from_pretrained at the right folder."
            )
        return path
    _check_path_or_repo_id(model_id)
    try:
        return Path(hf_hub_download(model_id, filename, subfolder=subfolder, library_name="hf_saerl", **hub_kwargs))
    except RemoteEntryNotFoundError as e:
        where = f"{model_id}/{subfolder}" if subfolder else model_id
        raise FileNotFoundError(
            f"{filename} is missing from Hub repo {where!r}. A saved {estimator} holds {expected}; push it with "
            f"{estimator}.push_to_hub(repo_id)."
        ) from e


def _check_path_or_repo_id(model_id: str) -> None:
    if not os.path.isdir(model_id) and (os.path.isabs(model_id) or model_id.startswith((".", "~"))
                                        or model_id.count("/") > 1):
        raise FileNotFoundError(f"Directory {model_id!r} does not exist (and it is not a Hub repo id 'owner/name').")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"Could not parse {path}: {e}. The file is corrupt: save the estimator again, or download it "
                         "again with force_download=True.") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path} should hold a JSON object, found {type(obj).__name__}. The file is corrupt.")
    return obj


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for truncated/garbled headers
        raise ValueError(f"Could not read {path}: {e}. The file is corrupt or truncated: save the estimator again, "
                         "or download it again with force_download=True.") from e


def _check_state(cls: type, state: Mapping[str, Any], path: Path) -> None:
    from .. import __version__

    saved = state.get("estimator")
    if saved != cls.__name__:
        raise ValueError(f"{path} holds a {saved!r}, not a {cls.__name__}: load it with {saved}.from_pretrained.")
    version = state.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path} has no valid 'format_version' (found {version!r}); the file is corrupt.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written in format version {version} by hf_saerl {state.get('hf_saerl_version')}; this hf_saerl "
            f"{__version__} reads format versions up to {FORMAT_VERSION}. Upgrade hf_saerl (pip install -U hf-saerl)."
        )
    for key in ("d_sae", "transform"):
        if key not in state:
            raise ValueError(f"{path} lacks the {key!r} entry; the file is corrupt or incomplete.")


def take_array(arrays: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...], source: str) -> np.ndarray:
    """``arrays[name]``, checked to have ``shape``; a clear error naming the file otherwise."""
    if name not in arrays:
        raise ValueError(f"{source} has no array {name!r} (found {sorted(arrays)}); the file is corrupt or incomplete.")
    arr = arrays[name]
    if arr.shape != tuple(shape):
        raise ValueError(
            f"Array {name!r} in {source} has shape {arr.shape}, expected {tuple(shape)}. The file is corrupt, or was "
            "written for another SAE width than its config says."
        )
    return arr
