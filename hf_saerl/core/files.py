"""The files of a saved estimator or audit: one file fetched from a folder or a Hub repo, safetensors arrays read
and checked, never a pickle.

Every download goes through :func:`huggingface_hub.hf_hub_download` as imported here, so tests replace it
(``monkeypatch.setattr(hf_saerl.core.files, "hf_hub_download", fake)``) and need no network.

Example:
    >>> import numpy as np
    >>> from hf_saerl.core.files import take_array
    >>> take_array({"coef": np.zeros(3)}, "coef", (3,), "probe.safetensors").shape
    (3,)
    >>> take_array({"coef": np.zeros(3)}, "coef", (4,), "probe.safetensors")
    Traceback (most recent call last):
    ...
    hf_saerl.errors.BundleError: Array 'coef' in probe.safetensors has shape (3,), expected (4,). The file is corrupt, or was written for another SAE width than its config says.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub import hf_hub_download

from ..errors import BundleError, NonFiniteError
from .hub import is_repo_id

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKSUM_KEY",
    "DIGEST_KEY",
    "REFETCH",
    "arrays_digest",
    "check_path_or_repo_id",
    "check_sealed",
    "fetch_file",
    "json_checksum",
    "read_arrays",
    "sealed",
    "take_array",
    "write_arrays",
]

#: The safetensors metadata key holding :func:`arrays_digest`.
DIGEST_KEY = "sha256"
#: The key of a JSON file's own checksum (see :func:`sealed`).
CHECKSUM_KEY = "checksum"

#: The way out when a saved file is damaged.
REFETCH = "Save it again, or download it again with force_download=True."


def check_path_or_repo_id(model_id: str | os.PathLike) -> str:
    """``model_id`` as a str, if it is an existing folder or a valid Hub repo id; a ``FileNotFoundError`` otherwise."""
    path = str(model_id)
    if os.path.isfile(path):
        raise FileNotFoundError(
            f"{path!r} is a file; pass the folder written by save_pretrained (the folder that "
            "holds it), or a Hub repo id."
        )
    if not os.path.isdir(path) and not is_repo_id(path):
        raise FileNotFoundError(
            f"Directory {path!r} does not exist (and it is not a Hub repo id 'owner/name'). Pass "
            "the folder written by save_pretrained, or a Hub repo id."
        )
    return path


def fetch_file(
    model_id: str,
    filename: str,
    *,
    expected: Sequence[str],
    owner: str,
    subfolder: str | None = None,
    **hub_kwargs: Any,
) -> Path:
    """The local path of ``filename`` in the folder ``model_id`` (``/subfolder``), or downloaded from that Hub repo.

    ``expected`` (the files a save holds) and ``owner`` (the class that saved them) make the
    ``FileNotFoundError`` of a missing file say what should be there and how to write it. ``hub_kwargs``
    (``revision``, ``token``, ``cache_dir``, ``force_download``, ``local_files_only``) go to ``hf_hub_download``.
    """
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
    )

    if os.path.isdir(model_id):
        folder = Path(model_id) / subfolder if subfolder else Path(model_id)
        path = folder / filename
        if not path.is_file():
            found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
            raise FileNotFoundError(
                f"{path} is missing. A saved {owner} folder holds {list(expected)}; found {found}. Write it with "
                f"{owner}.save_pretrained(dir), or point from_pretrained at the right folder."
            )
        return path
    check_path_or_repo_id(model_id)
    try:
        return Path(hf_hub_download(model_id, filename, subfolder=subfolder, library_name="hf_saerl", **hub_kwargs))
    except RemoteEntryNotFoundError as e:
        where = f"{model_id}/{subfolder}" if subfolder else model_id
        raise FileNotFoundError(
            f"{filename} is missing from Hub repo {where!r}. A saved {owner} holds {list(expected)}; push it with "
            f"{owner}.push_to_hub(repo_id), or check the repo id and subfolder."
        ) from e
    except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        raise FileNotFoundError(
            f"Could not fetch {filename} of {model_id!r} from the Hugging Face Hub ({type(e).__name__}: {e}). Check "
            "the repo id, the revision, your token and connection (HF_HUB_OFFLINE must be unset to download), or pass "
            "the path of a local folder instead."
        ) from e


def json_checksum(obj: Mapping[str, Any]) -> str:
    """The SHA-256 of ``obj`` (without its :data:`CHECKSUM_KEY` entry) as canonical JSON: sorted keys, no spaces."""
    import hashlib
    import json

    from ..core.serialization import jsonable

    body = {k: v for k, v in jsonable(dict(obj), nonfinite="raise").items() if k != CHECKSUM_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def sealed(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` with its :func:`json_checksum` under :data:`CHECKSUM_KEY`, for :func:`check_sealed` at load."""
    return {**obj, CHECKSUM_KEY: json_checksum(obj)}


def check_sealed(obj: Mapping[str, Any], path: str | Path, fix: str = REFETCH) -> None:
    """Refuse (:class:`~hf_saerl.errors.BundleError`) a JSON file whose content no longer matches the checksum
    recorded when it was written: a flipped byte must never load as another value. A file without a checksum
    (hand-written, or from before checksums) is accepted with a warning."""
    recorded = obj.get(CHECKSUM_KEY)
    if recorded is None:
        logger.warning("%s records no %r, so a changed value in it cannot be detected.", path, CHECKSUM_KEY)
        return
    if recorded != json_checksum(obj):
        raise BundleError(
            f"{path} was changed after it was saved: its content does not match its {CHECKSUM_KEY!r} "
            f"entry. If you edited it on purpose, delete the {CHECKSUM_KEY!r} entry to accept the edit; "
            f"otherwise the file is corrupt. {fix}"
        )


def write_arrays(path: str | Path, arrays: Mapping[str, np.ndarray], kind: str, format_version: int) -> None:
    """Save ``arrays`` (made contiguous) as safetensors, with the format and its version in the header."""
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    save_file(
        arrays,
        str(path),
        metadata={
            "format": f"hf_saerl/{kind}",
            "format_version": str(format_version),
            DIGEST_KEY: arrays_digest(arrays),
        },
    )


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """The SHA-256 of every array's name, dtype, shape and bytes (in name order): what :func:`write_arrays` records
    in the file's header and :func:`read_arrays` checks, so a flipped byte in the data is refused, not loaded."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def read_arrays(path: str | Path, fix: str = REFETCH) -> dict[str, np.ndarray]:
    """Every array of the safetensors file ``path``; a :class:`~hf_saerl.errors.BundleError` ending with ``fix``
    when the file cannot be read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            arrays = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - safe_open has keys() but no __iter__
    except Exception as e:  # safetensors raises its own error types for truncated/garbled headers
        raise BundleError(f"Could not read {path}: {e}. The file is corrupt or truncated. {fix}") from e
    recorded = metadata.get(DIGEST_KEY)
    if recorded is None:  # written before the digest was recorded: nothing to check against
        logger.warning(
            "%s records no %s checksum, so damage inside its arrays cannot be detected. %s", path, DIGEST_KEY, fix
        )
    elif recorded != arrays_digest(arrays):
        raise BundleError(
            f"{path}: its arrays do not match the {DIGEST_KEY} checksum recorded when it was saved; the "
            f"file is corrupt or was edited. {fix}"
        )
    return arrays


def take_array(
    arrays: Mapping[str, np.ndarray],
    name: str,
    shape: tuple[int, ...] | None,
    source: str,
    dtype: Any = None,
    finite: bool = False,
) -> np.ndarray:
    """``arrays[name]``, checked to have ``shape`` (``None``: any shape), ``dtype`` where given and, with ``finite``,
    only finite numbers (fitted weights; saved statistics may hold NaN); a :class:`~hf_saerl.errors.BundleError`
    (a :class:`~hf_saerl.errors.NonFiniteError` for NaN / inf) naming the file ``source`` otherwise."""
    if name not in arrays:
        raise BundleError(
            f"{source} has no array {name!r} (found {sorted(arrays)}); the file is corrupt or incomplete. {REFETCH}"
        )
    arr = arrays[name]
    if shape is not None and arr.shape != tuple(shape):
        raise BundleError(
            f"Array {name!r} in {source} has shape {arr.shape}, expected {tuple(shape)}. The file is corrupt, or was "
            "written for another SAE width than its config says."
        )
    if dtype is not None and arr.dtype != np.dtype(dtype):
        raise BundleError(
            f"Array {name!r} in {source} has dtype {arr.dtype}, expected {np.dtype(dtype)}: the file was "
            f"converted or is corrupt. {REFETCH}"
        )
    if finite and arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise NonFiniteError(
            f"Array {name!r} in {source} holds {bad} NaN or infinite value(s); a fitted state must be "
            f"finite, so the file is corrupt or was saved from a diverged fit. {REFETCH}"
        )
    return arr
