"""How a fitted estimator is written to a folder and read back: JSON and safetensors, versioned, never a pickle.

:func:`save_estimator` writes ``config.json`` (the constructor parameters), ``<kind>.json`` (format version,
hf_saerl / sklearn versions, ``d_sae``, the fitted hyper-parameters, transform steps and metrics) and
``<kind>.safetensors`` (every fitted array). :func:`load_estimator` reads them back from a folder or a Hub
repo (a ``subfolder`` of it for a pipeline), refusing a newer format version or a damaged file with a
:class:`~hf_saerl.errors.BundleError` naming it, and a ``d_sae`` override with a
:class:`~hf_saerl.errors.WidthMismatchError`. ``SAEEstimator.save_pretrained`` / ``from_pretrained`` are these.

Example:
    >>> import numpy as np, scipy.sparse as sp, tempfile
    >>> from hf_saerl import QualityProbe
    >>> from hf_saerl.estimators.saving import load_estimator, save_estimator
    >>> X = sp.random(40, 10, density=0.5, random_state=0, format="csr")
    >>> probe = QualityProbe(d_sae=10, cv=None).fit(X, np.arange(40) % 2 == 0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     save_estimator(probe, Path(folder))
    ...     loaded = load_estimator(QualityProbe, folder)
    >>> bool((loaded.coef_ == probe.coef_).all())
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..core.files import REFETCH, check_sealed, fetch_file, read_arrays, sealed, write_arrays
from ..core.serialization import check_format_version, read_json, write_json
from ..errors import BundleError, InvalidParameterError, WidthMismatchError
from .transforms import FeatureTransform

if TYPE_CHECKING:
    from .base import SAEEstimator

__all__ = ["CONFIG_NAME", "FORMAT_VERSION", "load_estimator", "save_estimator"]

#: Version of the on-disk layout written by :func:`save_estimator`.
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"


def save_estimator(estimator: Any, directory: Path) -> None:
    """Write ``config.json``, ``<kind>.json`` and ``<kind>.safetensors`` of a fitted ``estimator``."""
    import sklearn

    directory.mkdir(parents=True, exist_ok=True)
    kind = estimator.kind
    write_arrays(directory / f"{kind}.safetensors", estimator._all_arrays(), kind, FORMAT_VERSION)
    state = {
        "estimator": type(estimator).__name__,
        "format_version": FORMAT_VERSION,
        "hf_saerl_version": __version__,
        "sklearn_version": sklearn.__version__,
        "d_sae": int(estimator.d_sae),
        "transform": estimator.transform_.steps_,
        "fitted": estimator._fitted_state(),
        "metrics": estimator.metrics_,
        "sae_identity": getattr(estimator, "sae_identity_", None),
    }
    write_json(directory / f"{kind}.json", sealed(state), nonfinite="raise")
    write_json(directory / CONFIG_NAME, sealed(estimator.get_params(deep=False)), nonfinite="raise")


def load_estimator(
    cls: type[SAEEstimator],
    model_id: str,
    *,
    subfolder: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    **hub_kwargs: Any,
) -> Any:
    """A fitted ``cls`` read from the folder or Hub repo ``model_id`` (``/subfolder``); ``overrides`` replace saved
    constructor parameters, ``hub_kwargs`` (``revision``, ``token``, ...) go to the download."""
    kind, name = cls.kind, cls.__name__
    expected = [CONFIG_NAME, f"{kind}.json", f"{kind}.safetensors"]

    def fetch(filename: str) -> Path:
        return fetch_file(model_id, filename, expected=expected, owner=name, subfolder=subfolder, **hub_kwargs)

    config_path = fetch(CONFIG_NAME)
    config = read_json(config_path, f"the {name}'s parameters", REFETCH)
    state_path = fetch(f"{kind}.json")
    state = read_json(state_path, f"the fitted {name}", REFETCH)
    _check_state(cls, state, state_path)
    weights_path = fetch(f"{kind}.safetensors")
    arrays = read_arrays(weights_path)

    init_params = cls._get_param_names()
    defaults = cls._hub_mixin_jsonable_default_values
    params = {k: v for k, v in config.items() if k in init_params}
    params.update(overrides or {})
    estimator = cls(**{k: _as_default_type(v, defaults.get(k)) for k, v in params.items()})
    saved_width = state.get("d_sae")
    if saved_width != estimator.d_sae:
        raise WidthMismatchError(
            f"{state_path} was saved for SAE width d_sae={saved_width}, but d_sae={estimator.d_sae} was requested. "
            f"A fitted {name} only works at the width it was fitted on: drop the d_sae override, or fit a new one "
            "at that width."
        )
    try:
        estimator.transform_ = FeatureTransform.from_state(state["transform"], arrays, estimator.d_sae)
    except InvalidParameterError as e:  # an unknown or malformed step in the file
        raise BundleError(f"{state_path}: the saved transform is invalid ({e}). {REFETCH}") from None
    fitted = state.get("fitted") or {}
    missing = [key for key in cls._state_keys if key not in fitted]
    if missing:
        raise BundleError(
            f"{state_path} lacks the fitted value(s) {missing}; the file is corrupt or incomplete. {REFETCH}"
        )
    for key in cls._state_keys:
        setattr(estimator, key, fitted[key])
    estimator._restore(arrays, str(weights_path))
    estimator.metrics_ = state.get("metrics") or {}
    identity = state.get("sae_identity")
    if identity is not None and not isinstance(identity, dict):
        raise BundleError(
            f"{state_path}: 'sae_identity' must be an object or null (found {identity!r}); the file is "
            f"corrupt. {REFETCH}"
        )
    estimator.sae_identity_ = identity
    estimator.n_features_in_ = estimator._input_width()
    # Last, once every specific check has had its say: nothing valid-looking but changed gets through.
    check_sealed(config, config_path)
    check_sealed(state, state_path)
    return estimator


def _check_state(cls: type[SAEEstimator], state: Mapping[str, Any], path: Path) -> None:
    saved = state.get("estimator")
    if saved != cls.__name__:
        raise BundleError(
            f"{path} holds a {saved!r}, not a {cls.__name__}: load it with {saved}.from_pretrained, "
            f"or point at the folder of a saved {cls.__name__}."
        )
    check_format_version(state.get("format_version"), FORMAT_VERSION, path, state.get("hf_saerl_version"))
    for key in ("d_sae", "transform"):
        if key not in state:
            raise BundleError(f"{path} lacks the {key!r} entry; the file is corrupt or incomplete. {REFETCH}")


def _as_default_type(value: Any, default: Any) -> Any:
    """JSON turns tuples into lists; give tuple-default parameters their tuple back."""
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    return value
