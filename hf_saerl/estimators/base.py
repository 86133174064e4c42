"""What hf_saerl's estimators share: SAE features read at the edge, ``Dataset.map`` support, pickle-free saving.

:class:`SAEEstimator` is the base of :class:`~hf_saerl.estimators.probes.QualityProbe`,
:class:`~hf_saerl.estimators.probes.DifficultyProbe` and :class:`~hf_saerl.estimators.clustering.SAEClusterer`. It gives them

* **input at the edge**: a ``datasets.Dataset`` or batch dict with the sparse ``sae_indices`` /
  ``sae_values`` columns (turned into CSR by :func:`~hf_saerl.encoding.sparse.sparse_matrix`), or a matrix
  (scipy sparse or 2-D array) whose width must equal ``d_sae``; a clear error names both widths
  and the fix otherwise (labels: :mod:`.inputs`);
* the fitted :class:`~hf_saerl.estimators.transforms.FeatureTransform`;
* ``Dataset.map(estimator, batched=True)`` support through ``__call__`` and a cheap, deterministic
  fingerprint of (parameters, fitted arrays);
* **one fitted test**: ``__sklearn_is_fitted__`` (every fitted attribute set, by ``fit`` or ``from_pretrained``),
  asked by :func:`~hf_saerl.core.validation.check_fitted`, so unfitted use raises sklearn's ``NotFittedError``
  naming the method;
* **serialisation** through ``huggingface_hub.ModelHubMixin`` (the files: :mod:`.saving`): ``save_pretrained(dir)``
  writes

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
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import scipy.sparse as sp
from huggingface_hub import ModelHubMixin
from sklearn.base import BaseEstimator

from .._version import __version__
from ..core.columns import read_column
from ..core.fingerprint import Fingerprinted, stable_hash
from ..core.hub import HubLoadMixin
from ..core.serialization import jsonable
from ..core.validation import check_fitted, is_fitted
from ..encoding.sparse import sparse_matrix
from ..errors import HookMismatchError, InvalidParameterError, NonFiniteError, WidthMismatchError
from .arrow import arrow_csr, arrow_features, arrow_numbers, arrow_table
from .inputs import is_matrix
from .metrics import metrics_markdown
from .saving import FORMAT_VERSION, load_estimator, save_estimator
from .transforms import FeatureTransform, TransformSpec

logger = logging.getLogger(__name__)

__all__ = ["FORMAT_VERSION", "SAEEstimator", "UnverifiedSAEWarning", "card_template"]


class UnverifiedSAEWarning(UserWarning):
    """The SAE behind the features cannot be checked against the one an estimator was fitted on (one side has no
    record), so a probe could be scoring another SAE's latents."""


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


class SAEEstimator(
    Fingerprinted,
    BaseEstimator,
    HubLoadMixin,
    ModelHubMixin,
    library_name="hf_saerl",
    tags=["hf_saerl", "sparse-autoencoder"],
):
    """Base class; see the module docstring.

    Subclasses store the constructor parameters (``d_sae``, ``transform``, ``indices_column``,
    ``values_column``, ``n_tokens_column`` and their own) with ``self._store_params(locals())``; set ``kind``
    (file stem), ``_state_keys`` (fitted JSON scalars) and ``_array_attributes`` (saved array name -> fitted
    attribute); and implement ``fit`` (reading the input with ``_read_features``), ``_predict_columns``,
    ``_output_dtypes`` and ``_restore``.
    """

    kind: ClassVar[str] = "estimator"
    _state_keys: ClassVar[tuple[str, ...]] = ()
    _array_attributes: ClassVar[dict[str, str]] = {}
    d_sae: int
    transform: TransformSpec
    indices_column: str
    values_column: str
    n_tokens_column: str

    def _store_params(self, values: Mapping[str, Any]) -> None:
        """The whole body of a subclass constructor: store each parameter under its own name, unchanged
        (scikit-learn manners: the constructor only stores; ``fit`` validates)."""
        for name in self._get_param_names():
            setattr(self, name, values[name])

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted when every fitted attribute is set (``fit`` and ``from_pretrained`` set them all)."""
        names = ("transform_", "metrics_", "n_features_in_", *self._state_keys, *self._array_attributes.values())
        return all(hasattr(self, name) for name in names)

    # ------------------------------------------------------------------ reading the input
    def _validate_common(self) -> None:
        if isinstance(self.d_sae, bool) or not isinstance(self.d_sae, (int, np.integer)) or self.d_sae <= 0:
            raise InvalidParameterError(
                f"d_sae must be a positive int (the SAE width); got {self.d_sae!r}. Pass the "
                "SAE's d_sae (encoder.d_sae)."
            )
        FeatureTransform(self.transform)  # validates the spec

    def _read_features(self, data: Any, n_tokens: Any = None, *, fitted: bool = False) -> tuple[Any, np.ndarray | None]:
        """``(X, n_tokens)`` from a Dataset / batch dict (sparse columns) or a matrix; validates width and finiteness.

        A dataset's ``n_tokens_column`` is read when the transform (the fitted one with ``fitted=True``, else the
        one the parameters describe) needs token counts."""
        name = type(self).__name__
        if is_matrix(data):
            X: Any = data if sp.issparse(data) else np.asarray(data)  # (Any: scipy's stubs narrow issparse badly)
            if X.ndim != 2:
                raise InvalidParameterError(f"{name} needs a 2-D feature matrix (n_rows, d_sae); got shape {X.shape}.")
            if X.shape[1] != self.d_sae:
                raise WidthMismatchError(
                    f"X has {X.shape[1]} columns but this {name} works on SAE features of width d_sae={self.d_sae}. "
                    f"Use features from the SAE the estimator was built for (width {self.d_sae}), or construct "
                    f"it with d_sae={X.shape[1]} and fit it again."
                )
            X = sp.csr_matrix(cast(Any, X)) if sp.issparse(X) else X
            where = "The SAE features"
        else:
            table = arrow_table(data, (self.indices_column, self.values_column))
            X = self._sparse_columns(data if table is None else table, arrow=table is not None)
            where = f"The SAE features (column {self.values_column!r})"
            transform = self.transform_ if fitted else FeatureTransform(self.transform)
            if transform.needs_n_tokens and n_tokens is None:
                what = "token counts (for the 'length' transform step)"
                if table is not None and self.n_tokens_column in table.column_names:
                    n_tokens = arrow_numbers(table, self.n_tokens_column)
                else:
                    n_tokens = read_column(data, self.n_tokens_column, what)
        self._check_sae_identity(data, fitted)
        finite = np.isfinite(cast(Any, X).data if sp.issparse(X) else X)
        if not finite.all():
            raise NonFiniteError(
                f"{where} hold {int((~finite).sum())} NaN or infinite value(s); re-encode those rows "
                f"(check the model's dtype for overflow) or drop them before using this {name}."
            )
        if n_tokens is not None:
            n_tokens = np.asarray(n_tokens, dtype=np.float64).reshape(-1)
        return X, n_tokens

    def _check_sae_identity(self, data: Any, fitted: bool) -> None:
        """Which SAE made the data's columns (the encoder's record in the schema of a dataset or of a
        ``Dataset.map`` batch; none for a matrix or a plain dict): remembered at fit as ``sae_identity_``, compared
        at predict. Another hook or ``d_in`` is a :class:`~hf_saerl.errors.HookMismatchError`; another encoder
        fingerprint (a different SAE of the same shape, but also another model revision, pooling or top_k) is
        logged as a warning, since the record cannot tell these apart. Where only one side has a record (columns
        written by another tool, or an estimator fitted on a matrix or saved by an older version), nothing can be
        compared: an :class:`UnverifiedSAEWarning` says so, once per estimator."""
        has_schema, identity = _column_identity(data, self.indices_column)
        if not fitted:
            self.sae_identity_ = identity
            return
        recorded = getattr(self, "sae_identity_", None)
        if not identity or not recorded:
            if has_schema and (identity or recorded):
                self._warn_unverified(identity, recorded)
            return
        name = type(self).__name__
        for key in ("hook_name", "d_in"):
            if key in identity and key in recorded and identity[key] != recorded[key]:
                raise HookMismatchError(
                    f"This {name} was fitted on SAE features read at {key}={recorded[key]!r}, but the data's columns "
                    f"were encoded at {key}={identity[key]!r}: another SAE, whose latents mean other things. Encode "
                    f"the data with the SAE the {name} was fitted on, or fit a new {name} on these features."
                )
        if identity.get("fingerprint") != recorded.get("fingerprint"):
            logger.warning(
                "%s: the data's SAE columns were made by encoder %s, but this %s was fitted on columns of "
                "encoder %s (same hook and width). If the SAE differs, its scores mean nothing; re-encode "
                "with the fitting encoder to be sure.",
                name,
                identity.get("fingerprint"),
                name,
                recorded.get("fingerprint"),
            )

    def _warn_unverified(self, identity: dict[str, Any] | None, recorded: dict[str, Any] | None) -> None:
        if self.__dict__.get("_warned_unverified_sae"):
            return
        self.__dict__["_warned_unverified_sae"] = True  # once per estimator (not a parameter, not fitted state)
        name = type(self).__name__
        if recorded:
            what = (
                f"the data's {self.indices_column!r} column carries no SAE record (written by another tool or an "
                f"older version, or rebuilt from Python lists), so it cannot be verified that it comes from the "
                f"SAE this {name} was fitted on ({_describe(recorded)}). Re-encode the data with that SAE's "
                f"SAEEncoder, or"
            )
        else:
            what = (
                f"this {name} records no SAE (fitted on a matrix or on columns without a record, or saved by an "
                f"older version), so it cannot be verified that the data's features ({_describe(identity)}) "
                f"come from the SAE it was fitted on. Fit it on the encoded dataset to record its SAE, or"
            )
        warnings.warn(
            f"{name}: {what} silence this with warnings.simplefilter('ignore', UnverifiedSAEWarning) if "
            "you know they match.",
            UnverifiedSAEWarning,
            stacklevel=5,
        )

    def _sparse_columns(self, data: Any, arrow: bool = False) -> sp.csr_matrix:
        """The CSR of the SAE columns: from the Arrow buffers of a batch's table (``arrow=True``: no Python
        lists), else through :func:`~hf_saerl.encoding.sparse.sparse_matrix`. Both give the same matrix."""
        name = type(self).__name__
        read = arrow_csr if arrow else sparse_matrix
        try:
            return read(data, self.d_sae, indices_column=self.indices_column, values_column=self.values_column)
        except WidthMismatchError as e:  # latent ids outside [0, d_sae): say what it means for a fitted estimator
            raise WidthMismatchError(
                f"This {name} works on SAE features of width d_sae={self.d_sae}, but the data does not fit: {e} "
                f"A fitted or loaded {name} only applies to features of the SAE it was fitted on (width "
                f"{self.d_sae}): encode the data with that SAE, or fit a new {name} with the data's d_sae."
            ) from None

    def _features_for_predict(self, data: Any, n_tokens: Any = None, method: str = "predict") -> Any:
        """Fitted check (naming ``method``) + read + transform: the matrix the fitted weights apply to."""
        check_fitted(self, method)
        X, n_tokens = self._read_features(data, n_tokens, fitted=True)
        return self.transform_.transform(X, n_tokens)

    def _fit_transform(self, X: Any, n_tokens: np.ndarray | None) -> Any:
        self.transform_ = FeatureTransform(self.transform)
        return self.transform_.fit_transform(X, n_tokens)

    # ------------------------------------------------------------------ datasets integration
    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """The new columns for one batch: ``dataset.map(estimator, batched=True)``."""
        return self._predict_columns(self._features_for_predict(batch, method="dataset.map(estimator)"))

    @property
    def features(self):
        """The ``datasets.Features`` of the columns this estimator adds."""
        from datasets import Features, Value

        return Features({col: Value(dtype) for col, dtype in self._output_dtypes().items()})

    @property
    def fingerprint(self) -> str:
        """A short digest of the parameters and fitted arrays, used by ``datasets``' cache."""
        identity: dict[str, Any] = {"estimator": type(self).__name__, "params": jsonable(self.get_params(deep=False))}
        if is_fitted(self):
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
    def _predict_columns(self, Xt: Any) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _output_dtypes(self) -> dict[str, str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _restore(self, arrays: dict[str, np.ndarray], source: str) -> None:  # pragma: no cover - abstract
        """Set the fitted arrays from ``arrays`` (checked with :func:`~.files.take_array`) and validate the state;
        a :class:`~hf_saerl.errors.BundleError` naming ``source`` when it is invalid."""
        raise NotImplementedError

    def _input_columns(self) -> tuple[str, ...]:
        """The dataset columns this estimator reads (the SAE columns here; a probe on raw activations reads its
        ``raw_column``), for :func:`~hf_saerl.estimators.selection.column_scores`."""
        return (self.indices_column, self.values_column)

    def _input_width(self) -> int:
        """``n_features_in_`` of a loaded estimator: the width of the matrix its fitted weights apply to."""
        return int(self.d_sae)

    def _fitted_state(self) -> dict[str, Any]:
        """The JSON-able fitted scalars (``_state_keys``), saved in ``<kind>.json``."""
        return {key: jsonable(getattr(self, key)) for key in self._state_keys}

    def _all_arrays(self) -> dict[str, np.ndarray]:
        fitted = {name: getattr(self, attribute) for name, attribute in self._array_attributes.items()}
        return {**fitted, **self.transform_.state_arrays()}

    # ------------------------------------------------------------------ saving and loading (see .saving)
    def _save_pretrained(self, save_directory: Path) -> None:
        """Write ``config.json``, ``<kind>.json`` and ``<kind>.safetensors`` into ``save_directory``."""
        check_fitted(self, "save_pretrained")
        save_estimator(self, Path(save_directory))

    def generate_model_card(self, *args: Any, **kwargs: Any):
        values = {
            "estimator": type(self).__name__,
            "kind": self.kind,
            "d_sae": self.d_sae,
            "version": __version__,
            "metrics_table": metrics_markdown(self.metrics_ if is_fitted(self) else None),
            "params": json.dumps(jsonable(self.get_params(deep=False)), indent=2, sort_keys=True),
            **kwargs,
        }
        return super().generate_model_card(*args, **values)

    @classmethod
    def _load_pretrained(
        cls, model_id: str, hub: dict[str, Any], *, subfolder: str | None = None, **model_kwargs: Any
    ) -> SAEEstimator:
        """What ``from_pretrained`` / ``_from_pretrained`` (:class:`~hf_saerl.core.hub.HubLoadMixin`) do: load a
        saved estimator from a local folder or a Hub repo id (optionally a ``subfolder`` of it); ``hub`` holds the
        ``huggingface_hub`` options, and ``model_kwargs`` override the saved constructor parameters (e.g. output
        column names)."""
        return load_estimator(cls, model_id, subfolder=subfolder, overrides=model_kwargs, **hub)


def _column_identity(data: Any, indices_column: str) -> tuple[bool, dict[str, Any] | None]:
    """``(has_schema, record)``: whether ``data`` carries a ``datasets`` schema (a Dataset, an IterableDataset with
    features, a ``Dataset.map`` batch), and the SAE record :class:`~hf_saerl.encoding.encoder.SAEEncoder` stores in
    it, or None."""
    if is_matrix(data):
        return False, None
    features = data.features if hasattr(data, "features") else arrow_features(data)
    if features is None:
        return False, None
    from ..encoding.encoder import sae_identity_of

    record = sae_identity_of(features, indices_column)
    return True, (dict(record) if isinstance(record, Mapping) else None)


def _describe(identity: Mapping[str, Any] | None) -> str:
    identity = identity or {}
    parts = [f"{key} {identity[key]!r}" for key in ("hook_name", "d_in", "d_sae", "fingerprint") if key in identity]
    return ", ".join(parts) or "no details recorded"
