"""The files of a saved estimator or audit: one file fetched from a folder or a Hub repo, safetensors arrays read
and checked, never a pickle.

Every download goes through :func:`huggingface_hub.hf_hub_download` as imported here, so tests replace it
(``monkeypatch.setattr(hf_saerl.estimators.files, "hf_hub_download", fake)``) and need no network.

Example:
    >>> import numpy as np
    >>> from hf_saerl.estimators.files import take_array
    >>> take_array({"coef": np.zeros(3)}, "coef", (3,), "probe.safetensors").shape
    (3,)
    >>> take_array({"coef": np.zeros(3)}, "coef", (4,), "probe.safetensors")
    Traceback (most recent call last):
    ...
    hf_saerl.errors.BundleError: Array 'coef' in probe.safetensors has shape (3,), expected (4,). The file is corrupt, or was written for another SAE width than its config says.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from huggingface_hub import hf_hub_download

from ..core.hub import is_repo_id
from ..errors import BundleError

__all__ = ["fetch_file", "check_path_or_repo_id", "read_arrays", "write_arrays", "take_array", "REFETCH"]

#: The way out when a saved file is damaged.
REFETCH = "Save it again, or download it again with force_download=True."


def check_path_or_repo_id(model_id: str | os.PathLike) -> str:
    """``model_id`` as a str, if it is an existing folder or a valid Hub repo id; a ``FileNotFoundError`` otherwise."""
    path = str(model_id)
    if os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} is a file; pass the folder written by save_pretrained (the folder that "
                                "holds it), or a Hub repo id.")
    if not os.path.isdir(path) and not is_repo_id(path):
        raise FileNotFoundError(f"Directory {path!r} does not exist (and it is not a Hub repo id 'owner/name'). Pass "
                                "the folder written by save_pretrained, or a Hub repo id.")
    return path


def fetch_file(model_id: str, filename: str, *, expected: Sequence[str], owner: str, subfolder: str | None = None,
               **hub_kwargs: Any) -> Path:
    """The local path of ``filename`` in the folder ``model_id`` (``/subfolder``), or downloaded from that Hub repo.

    ``expected`` (the files a save holds) and ``owner`` (the class that saved them) make the
    ``FileNotFoundError`` of a missing file say what should be there and how to write it. ``hub_kwargs``
    (``revision``, ``token``, ``cache_dir``, ``force_download``, ``local_files_only``) go to ``hf_hub_download``.
    """
    from huggingface_hub.errors import (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RemoteEntryNotFoundError)

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


def write_arrays(path: str | Path, arrays: Mapping[str, np.ndarray], kind: str, format_version: int) -> None:
    """Save ``arrays`` (made contiguous) as safetensors, with the format and its version in the header."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path),
              metadata={"format": f"hf_saerl/{kind}", "format_version": str(format_version)})


def read_arrays(path: str | Path, fix: str = REFETCH) -> dict[str, np.ndarray]:
    """Every array of the safetensors file ``path``; a :class:`~hf_saerl.errors.BundleError` ending with ``fix``
    when the file cannot be read."""
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for truncated/garbled headers
        raise BundleError(f"Could not read {path}: {e}. The file is corrupt or truncated. {fix}") from e


def take_array(arrays: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...] | None, source: str) -> np.ndarray:
    """``arrays[name]``, checked to have ``shape`` (``None``: any shape); a :class:`~hf_saerl.errors.BundleError`
    naming the file ``source`` otherwise."""
    if name not in arrays:
        raise BundleError(f"{source} has no array {name!r} (found {sorted(arrays)}); the file is corrupt or "
                          f"incomplete. {REFETCH}")
    arr = arrays[name]
    if shape is not None and arr.shape != tuple(shape):
        raise BundleError(
            f"Array {name!r} in {source} has shape {arr.shape}, expected {tuple(shape)}. The file is corrupt, or was "
            "written for another SAE width than its config says."
        )
    return arr
