"""The folder a saved :class:`~hf_saerl.pipeline.pipeline.SAERLPipeline` is: its layout, writing it, checking it, and
building its encoder and estimators back from it.

A bundle (``save_pretrained(dir)``, ``push_to_hub(repo_id)``) is a folder::

    config.json          model id + revision (or the embedded default's name), SAE reference and hook,
                         d_in/d_sae, pooling, top-k, text template, column names, versions
    README.md            a model card with the metrics measured at fit time and a usage snippet
    sae/                 the SAE as a sae-lens folder (cfg.json + sae_weights.safetensors), unless the
                         SAE is a Hub reference (release, sae_id)
    quality/ difficulty/ clusters/   each fitted estimator, saved by its own save_pretrained

Loading never unpickles: JSON and safetensors only, and files it does not expect are ignored (a Hub
download fetches only the files of :func:`bundle_patterns`). :func:`check_bundle` runs before anything is
built: the files are present and parse, the format version is one this hf_saerl reads, and the SAE's width
and hook and every estimator's width agree with ``config.json``. A bundle failing any of this is refused
with a message naming the file and the fix: a missing file is a ``FileNotFoundError``, a malformed, tampered
or newer one a :class:`~hf_saerl.errors.BundleError`, parts of different widths or hooks a
:class:`~hf_saerl.errors.WidthMismatchError` / :class:`~hf_saerl.errors.HookMismatchError`.

The estimator roles come from the classes themselves (:func:`estimator_classes`): each role's files are
named by the class attribute ``kind`` and its ``<kind>.json`` records the class name.

Example:
    >>> from hf_saerl.pipeline.bundle import estimator_folder, estimator_classes
    >>> {role: (estimator_folder(role), cls.kind) for role, cls in estimator_classes().items()}
    {'quality': ('quality', 'quality_probe'), 'difficulty': ('difficulty', 'difficulty_probe'), 'clusterer': ('clusters', 'clusters')}
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.files import check_sealed, sealed
from ..core.hub import local_folder
from ..core.serialization import check_format_version, read_json, write_json
from ..errors import BundleError, HookMismatchError, InvalidParameterError, WidthMismatchError

if TYPE_CHECKING:  # imported at run time on first use only (scikit-learn, torch): see estimator_classes
    from ..estimators.base import SAEEstimator

logger = logging.getLogger(__name__)

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "PIPELINE_FORMAT",
    "PIPELINE_FORMAT_VERSION",
    "SAE_FILES",
    "SAE_FOLDER",
    "build_encoder",
    "bundle_folder",
    "bundle_patterns",
    "check_bundle",
    "check_safetensors",
    "encoder_options",
    "encoder_record",
    "estimator_classes",
    "estimator_folder",
    "file_sha256",
    "load_estimators",
    "model_record",
    "resolve_model",
    "write_bundle",
]

#: The ``format`` a pipeline's ``config.json`` declares.
PIPELINE_FORMAT = "hf_saerl/pipeline"
#: Version of the bundle layout written by :func:`write_bundle`.
PIPELINE_FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
SAE_FOLDER = "sae"
SAE_FILES = ("cfg.json", "sae_weights.safetensors")

# The clusterer's subfolder predates the role names; every other estimator is stored under its role.
_LEGACY_FOLDERS = {"clusterer": "clusters"}
_RESAVE = "Save the pipeline again with SAERLPipeline.save_pretrained(dir), or download it again (force_download=True)."
_NOT_A_BUNDLE = (
    "Point from_pretrained at a folder written by SAERLPipeline.save_pretrained, or save the pipeline "
    "again with SAERLPipeline.save_pretrained(dir)."
)


# ---------------------------------------------------------------------- the layout
@functools.cache
def estimator_classes() -> dict[str, type[SAEEstimator]]:
    """Role -> estimator class, in the order a pipeline applies them: the one list of a pipeline's parts.

    Imported on first use (the estimators pull in scikit-learn and torch).
    """
    from ..estimators.clustering import SAEClusterer
    from ..estimators.probes import DifficultyProbe, QualityProbe

    return {"quality": QualityProbe, "difficulty": DifficultyProbe, "clusterer": SAEClusterer}


def estimator_folder(role: str) -> str:
    """The subfolder the estimator of ``role`` is saved in (``quality``, ``difficulty``, ``clusters``)."""
    return _LEGACY_FOLDERS.get(role, role)


def bundle_patterns() -> list[str]:
    """The ``allow_patterns`` of a bundle's files: a Hub download fetches these and nothing else."""
    folders = [SAE_FOLDER] + [estimator_folder(role) for role in estimator_classes()]
    return [CONFIG_NAME, CARD_NAME] + [f"{sub}/*.{ext}" for ext in ("json", "safetensors") for sub in folders]


def bundle_folder(repo_id_or_path: str | Path, **hub_kwargs: Any) -> Path:
    """The local folder of a bundle: ``repo_id_or_path`` itself, or the download of a Hub repo's bundle files.

    ``hub_kwargs`` (``revision``, ``token``, ``cache_dir``, ``force_download``, ``local_files_only``) go to
    :func:`~hf_saerl.core.hub.download_folder`. Neither a folder nor a repo id is a ``FileNotFoundError``.
    """
    return local_folder(repo_id_or_path, "SAERLPipeline", allow_patterns=bundle_patterns(), **hub_kwargs)


# ---------------------------------------------------------------------- writing
def write_bundle(
    folder: str | Path, config: Mapping[str, Any], *, estimators: Mapping[str, Any], sae: Any = None, card: Any = None
) -> Path:
    """Write a bundle into ``folder`` (created if needed) and return it.

    Args:
        config: the pipeline's ``config()``, written as ``config.json``.
        estimators: role -> fitted estimator, each saved by its own ``save_pretrained`` in
            :func:`estimator_folder`.
        sae: the sae-lens SAE, stored in ``sae/`` when ``config["sae"]`` records a path.
        card: a ``huggingface_hub.ModelCard``, saved as ``README.md``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if (config.get("sae") or {}).get("path"):
        sae.save_model(str(folder / config["sae"]["path"]))
    for role, est in estimators.items():
        est.save_pretrained(folder / estimator_folder(role))
    config = dict(config)
    sae_path = (config.get("sae") or {}).get("path")
    if sae_path:  # sae-lens writes no checksum of its own: record one per file
        config["files"] = {f"{sae_path}/{name}": file_sha256(folder / sae_path / name) for name in SAE_FILES}
    write_json(folder / CONFIG_NAME, sealed(config), nonfinite="raise")
    if card is not None:
        card.save(folder / CARD_NAME)
    return folder


# ---------------------------------------------------------------------- recording the encoder
# The encoder's identity lives in the "model" and "sae" records, not among its saved options.
_RECORDED_APART = ("model", "sae", "tokenizer", "gguf_file", "revision")

#: The entries of ``config.json`` that :func:`encoder_record` fills, in file order; None without an encoder.
ENCODER_KEYS = ("model", "sae", "hook_name", "sae_hook_name", "d_in", "pooling", "top_k", "text", "encoder")


def column_record(encoder: Any, estimators: Mapping[str, Any]) -> dict[str, str]:
    """The ``columns`` entry of ``config.json``: the name of every column the pipeline's parts write, by role
    (``indices``, ``values``, ``n_tokens``, ``truncated`` of the encoder; ``quality``; ``difficulty`` and, for a
    pass-rate probe, ``pass_rate``; ``cluster_id`` and ``cluster_distance``)."""
    cols: dict[str, str] = {}
    if encoder is not None:
        c = encoder.columns
        cols.update(indices=c.indices, values=c.values, n_tokens=c.n_tokens, truncated=c.truncated)
    if (quality := estimators.get("quality")) is not None:
        cols["quality"] = quality.output_column
    if (difficulty := estimators.get("difficulty")) is not None:
        cols["difficulty"] = difficulty.difficulty_column
        if getattr(difficulty, "label_", "pass_rate") == "pass_rate":
            cols["pass_rate"] = difficulty.pass_rate_column
    if (clusterer := estimators.get("clusterer")) is not None:
        cols.update(cluster_id=clusterer.id_column, cluster_distance=clusterer.distance_column)
    return cols


def encoder_record(encoder: Any, *, model_id: str | None = None, tokenizer_id: str | None = None) -> dict[str, Any]:
    """What ``config.json`` records of an encoder: the ``model`` and ``sae`` records, ``hook_name``, the SAE's own
    hook (``sae_hook_name``), ``d_in``, ``pooling``, ``top_k``, ``text`` and the saved options (``encoder``).

    ``model_id`` / ``tokenizer_id`` say where the model and tokenizer load from (see :func:`model_record`).
    :func:`build_encoder` is the inverse.
    """
    from ..encoding.saes import sae_hook_name

    ec = encoder.config()
    return {
        "model": model_record(ec, model_id, tokenizer_id),
        "sae": _sae_record(ec.get("sae")),
        "hook_name": encoder.hook_name,
        "sae_hook_name": sae_hook_name(encoder.sae),
        "d_in": int(encoder.d_in),
        "pooling": ec.get("pooling"),
        "top_k": ec.get("top_k"),
        "text": {k: ec.get(k) for k in ("text_column", "template", "chat_template")},
        "encoder": encoder_options(ec),
    }


def encoder_options(encoder_config: Mapping[str, Any]) -> dict[str, Any]:
    """The saved options of an encoder: the entries of its ``config()`` that are options
    (:meth:`SAEEncoder.option_names`, flat as ``config()`` records them), minus the references the ``model`` /
    ``sae`` records hold. A new encoder option needs no edit here."""
    accepted = _encoder_arguments() - set(_RECORDED_APART)
    return {k: v for k, v in encoder_config.items() if k in accepted}


def model_record(
    encoder_config: Mapping[str, Any], model_id: str | None = None, tokenizer_id: str | None = None
) -> dict[str, Any]:
    """The ``model`` record: ``id``, ``revision``, ``gguf_file``, ``tokenizer``; :func:`resolve_model` reads it back.

    ``model_id`` overrides the encoder's own model id; an in-memory model needs one
    (:class:`~hf_saerl.errors.InvalidParameterError` otherwise). The embedded default is recorded by name, so the
    bundle loads on any machine with the wheel installed.
    """
    import os

    from ..models.embedded import EMBEDDED_MODEL

    ec = encoder_config
    if model_id is not None:
        return {
            "id": str(model_id),
            "revision": ec.get("revision"),
            "gguf_file": ec.get("gguf_file"),
            "tokenizer": tokenizer_id or ec.get("tokenizer"),
        }
    spec = ec.get("model")
    if spec is None:
        raise InvalidParameterError(
            "The encoder holds an in-memory model, which a saved pipeline cannot record. Pass model_id='<Hub id or "
            "local folder>' (where the same model and tokenizer can be loaded from) to SAERLPipeline(...) or to "
            "save_pretrained / push_to_hub, or build the SAEEncoder from a model id."
        )
    if _is_embedded(spec, ec.get("gguf_file")):
        return {"id": EMBEDDED_MODEL, "revision": None, "gguf_file": None, "tokenizer": None}
    if os.path.isdir(spec):
        logger.warning(
            "The pipeline records its model as the local folder %r; it loads elsewhere only if that "
            "folder exists there. Pass model_id='<Hub id>' to record a portable reference.",
            spec,
        )
    return {
        "id": spec,
        "revision": ec.get("revision"),
        "gguf_file": ec.get("gguf_file"),
        "tokenizer": tokenizer_id or ec.get("tokenizer"),
    }


def _encoder_arguments() -> set[str]:
    """The flat options :meth:`SAEEncoder.from_config` reads, and the references recorded apart."""
    from ..encoding.encoder import SAEEncoder

    return set(SAEEncoder.option_names()) | set(_RECORDED_APART)


def _is_embedded(spec: str, gguf_file: str | None) -> bool:
    import os

    try:
        from ..models.embedded import default_model_spec

        default = default_model_spec()
    except (FileNotFoundError, ImportError):
        return False
    return gguf_file == default["gguf_file"] and os.path.realpath(spec) == os.path.realpath(default["model"])


def _sae_record(spec: Any) -> dict[str, Any]:
    if isinstance(spec, (list, tuple)) and len(spec) == 2:
        return {"release": str(spec[0]), "sae_id": str(spec[1])}
    return {"path": SAE_FOLDER}


# ---------------------------------------------------------------------- checking
def check_bundle(folder: str | Path) -> dict[str, Any]:
    """Validate a saved pipeline folder without running anything; return its ``config.json``.

    Checks: the config parses and has a format version this hf_saerl reads; every file the config
    names exists and parses (JSON, safetensors headers); the SAE's ``d_in``/``d_sae``/hook and each
    estimator's width agree with the config. Raises ``FileNotFoundError`` (a missing file),
    :class:`~hf_saerl.errors.BundleError` (a malformed, tampered or newer file),
    :class:`~hf_saerl.errors.WidthMismatchError` or :class:`~hf_saerl.errors.HookMismatchError`, each naming
    the file and the fix.
    """
    folder = Path(folder)
    config_path = folder / CONFIG_NAME
    config = read_json(config_path, "the pipeline", _NOT_A_BUNDLE)
    if config.get("format") != PIPELINE_FORMAT:
        raise BundleError(
            f"{config_path} is not an hf_saerl pipeline config (its 'format' is {config.get('format')!r}, "
            f"expected {PIPELINE_FORMAT!r}). {_NOT_A_BUNDLE}"
        )
    check_format_version(
        config.get("format_version"), PIPELINE_FORMAT_VERSION, config_path, config.get("hf_saerl_version")
    )
    d_sae = config.get("d_sae")
    if isinstance(d_sae, bool) or not isinstance(d_sae, int) or d_sae <= 0:
        raise BundleError(f"{config_path} has no valid 'd_sae' (found {d_sae!r}); the file is corrupt. {_RESAVE}")
    threshold = config.get("quality_threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise BundleError(
            f"{config_path} has quality_threshold={threshold!r}, not a number or null; the file is corrupt. {_RESAVE}"
        )
    estimators = config.get("estimators") or {}
    unknown = sorted(set(estimators) - set(estimator_classes()))
    if unknown:
        raise BundleError(
            f"{config_path} lists unknown estimator role(s) {unknown}; this hf_saerl knows "
            f"{sorted(estimator_classes())}. Upgrade hf_saerl (pip install -U hf-saerl), or save the "
            "pipeline again with this version."
        )
    for role in estimators:
        _check_estimator_files(folder, role, d_sae)
    if config.get("model") is not None:
        _check_encoder_config(config, config_path)
        sae = config.get("sae") or {}
        if sae.get("path"):
            _check_sae_folder(_inside(folder, sae["path"], config_path), config, config_path)
    # Last, once every specific check has had its say: nothing valid-looking but changed gets through.
    _check_file_digests(folder, config.get("files") or {}, config_path)
    check_sealed(config, config_path, _RESAVE)
    return config


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of the file at ``path``, read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_file_digests(folder: Path, files: Any, config_path: Path) -> None:
    """Every file ``config.json`` lists under ``files`` lies inside the bundle and has the recorded SHA-256."""
    if not isinstance(files, Mapping):
        raise BundleError(
            f"{config_path}: 'files' must map paths to SHA-256 digests (found {files!r}); the file is "
            f"corrupt. {_RESAVE}"
        )
    for relative, digest in files.items():
        path = _inside(folder, relative, config_path, what=f"a file ({relative!r})")
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing from the pipeline folder ({config_path} lists it). {_RESAVE}")
        if file_sha256(path) != digest:
            raise BundleError(
                f"{path} does not match the SHA-256 that {config_path} recorded when the pipeline was "
                f"saved; the file is corrupt or was replaced. {_RESAVE}"
            )


def _inside(folder: Path, relative: Any, config_path: Path, what: str = "the SAE") -> Path:
    path = folder / str(relative)
    if not isinstance(relative, str) or not path.resolve().is_relative_to(folder.resolve()):
        raise BundleError(
            f"{config_path} points {what} at {relative!r}, outside the pipeline's folder; the file was "
            f"tampered with. {_RESAVE}"
        )
    return path


def _check_estimator_files(folder: Path, role: str, d_sae: int) -> None:
    cls = estimator_classes()[role]
    where = folder / estimator_folder(role)
    expected = [CONFIG_NAME, f"{cls.kind}.json", f"{cls.kind}.safetensors"]
    missing = [name for name in expected if not (where / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"The pipeline's {role} is incomplete: {[str(where / m) for m in missing]} missing (a saved {cls.__name__} "
            f"holds {expected}). {_RESAVE}"
        )
    state_path = where / f"{cls.kind}.json"
    state = read_json(state_path, f"the {role}", _RESAVE)
    if state.get("estimator") != cls.__name__:
        raise BundleError(
            f"{state_path} holds a {state.get('estimator')!r}, but the pipeline's {role} must be a "
            f"{cls.__name__}. {_RESAVE}"
        )
    width = state.get("d_sae")
    if width != d_sae:
        raise WidthMismatchError(
            f"SAE width mismatch: {state_path} was fitted on SAE features of width d_sae={width}, but the pipeline's "
            f"config.json says d_sae={d_sae}. The bundle mixes parts from different SAEs: refit the {role} on this "
            "SAE's features and save the pipeline again."
        )
    check_safetensors(where / f"{cls.kind}.safetensors")


def _check_encoder_config(config: Mapping[str, Any], path: Path) -> None:
    model, sae, enc = config.get("model"), config.get("sae"), config.get("encoder")
    if not isinstance(model, Mapping) or not model.get("id"):
        raise BundleError(
            f"{path}: 'model' must record the model's id (found {model!r}); the file is corrupt. {_RESAVE}"
        )
    if not isinstance(sae, Mapping) or not (sae.get("path") or (sae.get("release") and sae.get("sae_id"))):
        raise BundleError(
            f"{path}: 'sae' must hold a release and sae_id, or the path of the stored SAE (found "
            f"{sae!r}); the file is corrupt. {_RESAVE}"
        )
    if not isinstance(enc, Mapping) or not config.get("hook_name") or not isinstance(config.get("d_in"), int):
        raise BundleError(f"{path} lacks the encoder settings, hook_name or d_in; the file is corrupt. {_RESAVE}")
    unknown = sorted(set(enc) - _encoder_arguments())
    if unknown:
        raise BundleError(
            f"{path} records encoder options {unknown} that this hf_saerl's SAEEncoder does not take; "
            "the pipeline was saved by a newer hf_saerl. Upgrade hf_saerl (pip install -U hf-saerl), or "
            "save the pipeline again with this version."
        )


def _check_sae_folder(sae_dir: Path, config: Mapping[str, Any], config_path: Path) -> None:
    missing = [name for name in SAE_FILES if not (sae_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"The pipeline's SAE is incomplete: {[str(sae_dir / m) for m in missing]} missing (a sae-lens folder holds "
            f"{list(SAE_FILES)}). {_RESAVE}"
        )
    cfg_path = sae_dir / "cfg.json"
    cfg = read_json(cfg_path, "the SAE", _RESAVE)
    for key in ("d_in", "d_sae"):
        if cfg.get(key) != config.get(key):
            raise WidthMismatchError(
                f"SAE width mismatch: {cfg_path} says {key}={cfg.get(key)} but {config_path} says {key}={config.get(key)}. "
                "The stored SAE is not the one the pipeline was built with: save the pipeline again from its encoder."
            )
    metadata = cfg.get("metadata") or {}
    own_hook = metadata.get("hf_hook_name") or metadata.get("hook_name") or cfg.get("hook_name")
    recorded = config.get("sae_hook_name")
    if own_hook != recorded:
        raise HookMismatchError(
            f"SAE hook mismatch: {cfg_path} says the SAE was trained on {own_hook!r} but {config_path} records "
            f"{recorded!r}. The stored SAE is not the one the pipeline was built with: save the pipeline again."
        )
    shapes = check_safetensors(sae_dir / "sae_weights.safetensors")
    want = {"W_enc": [config["d_in"], config["d_sae"]], "W_dec": [config["d_sae"], config["d_in"]]}
    for name, shape in want.items():
        if name in shapes and list(shapes[name]) != shape:
            raise WidthMismatchError(
                f"SAE width mismatch: {name} in {sae_dir / 'sae_weights.safetensors'} has shape "
                f"{list(shapes[name])}, but config.json says {shape}. {_RESAVE}"
            )


def check_safetensors(path: str | Path) -> dict[str, list[int]]:
    """Parse a safetensors file's header and check the file holds every byte it announces; return the tensor
    shapes by name. A truncated or corrupt file is a :class:`~hf_saerl.errors.BundleError`; no tensor is read.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from safetensors.numpy import save_file
        >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> save_file({"W": np.zeros((2, 3), np.float32)}, path)
        >>> check_safetensors(path)
        {'W': [2, 3]}
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = path.stat().st_size
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or n <= 0 or 8 + n > size:
                raise ValueError("the header is cut short")
            header = json.loads(fh.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end != size:
            raise ValueError(f"it announces {8 + n + end} bytes but has {size}")
        return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path} is not a valid safetensors file ({e}); it is corrupt or truncated. {_RESAVE}") from e


# ---------------------------------------------------------------------- building back
def load_estimators(folder: str | Path, config: Mapping[str, Any]) -> dict[str, Any]:
    """Role -> estimator loaded from its subfolder, for every role ``config["estimators"]`` lists."""
    classes = estimator_classes()
    return {
        role: classes[role].from_pretrained(str(Path(folder) / estimator_folder(role)))
        for role in (config.get("estimators") or {})
    }


def build_encoder(
    folder: str | Path,
    config: Mapping[str, Any],
    model: Any = None,
    tokenizer: Any = None,
    encoder_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """The :class:`~hf_saerl.encoding.encoder.SAEEncoder` a checked ``config`` records.

    ``model`` / ``tokenizer`` replace the recorded ones (an id, folder or loaded object); ``encoder_kwargs``
    (runtime options such as ``device=``) override the saved options. The SAE's widths must still match the
    config (:class:`~hf_saerl.errors.WidthMismatchError` otherwise: a Hub reference may have moved).
    """
    from ..encoding.encoder import SAEEncoder
    from ..encoding.saes import load_sae

    record = config["model"]
    kwargs = dict(config["encoder"])
    unknown = sorted(set(kwargs) - _encoder_arguments())
    if unknown:
        raise BundleError(
            f"config.json in {folder} records encoder options {unknown} that this hf_saerl's SAEEncoder "
            "does not take; the pipeline was saved by a newer hf_saerl. Upgrade hf_saerl "
            "(pip install -U hf-saerl), or save the pipeline again with this version."
        )
    overrides: dict[str, Any] = {}
    if model is None:
        model, overrides["gguf_file"], overrides["revision"] = resolve_model(record)
        if tokenizer is None and record.get("tokenizer"):
            tokenizer = record["tokenizer"]
    sae_ref = config["sae"]
    if sae_ref.get("path"):
        sae_dir = Path(folder) / sae_ref["path"]
        try:
            sae = load_sae(str(sae_dir))
        except Exception as e:  # sae-lens raises safetensors / config errors of many kinds
            raise BundleError(f"Could not load the SAE stored in {sae_dir}: {e}. {_RESAVE}") from e
    else:
        sae = (sae_ref["release"], sae_ref["sae_id"])
    overrides = {"tokenizer": tokenizer, **overrides, **(encoder_kwargs or {})}
    encoder = SAEEncoder.from_config(kwargs, model, sae, **overrides)
    for key in ("d_in", "d_sae"):
        if int(getattr(encoder, key)) != config[key]:
            raise WidthMismatchError(
                f"SAE width mismatch: the SAE {sae!r} has {key}={getattr(encoder, key)}, but the pipeline's config.json "
                f"says {key}={config[key]}. The SAE reference no longer points to the SAE the pipeline was fitted on: "
                "pin it, or refit the pipeline."
            )
    return encoder


def resolve_model(record: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    """``(model, gguf_file, revision)`` to load for a config's ``model`` record (the embedded default by name)."""
    from ..models.embedded import EMBEDDED_MODEL, default_model_spec

    if record["id"] == EMBEDDED_MODEL:
        spec = default_model_spec()
        return spec["model"], spec["gguf_file"], None
    return record["id"], record.get("gguf_file"), record.get("revision")
