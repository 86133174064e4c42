"""Hub I/O shared by every saved hf_saerl object: "is this a folder or a repo id?", download, upload.

Every call to the Hub goes through the names imported here (``HfApi``, ``snapshot_download``), so tests
replace them with local stand-ins (``monkeypatch.setattr(hf_saerl.core.hub, "snapshot_download", fake)``)
and nothing needs the network. Repo ids are checked with ``huggingface_hub``'s own ``validate_repo_id``.

Example:
    >>> from hf_saerl.core.hub import is_repo_id
    >>> is_repo_id("HuggingFaceTB/SmolLM2-135M-Instruct"), is_repo_id("./my-pipeline"), is_repo_id("a/b/c")
    (True, False, False)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from huggingface_hub import HfApi, snapshot_download

from .._version import __version__

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo

__all__ = ["HubLoadMixin", "download_folder", "is_repo_id", "local_folder", "upload_folder"]


def is_repo_id(value: Any) -> bool:
    """Whether ``value`` is a valid Hub repo id (``name`` or ``owner/name``) and not an existing local path."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(value, str) or os.path.exists(value) or value.startswith((".", "~")) or os.path.isabs(value):
        return False
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def _hub_patterns(patterns: Sequence[str] | str | None) -> list[str] | str | None:
    """A pattern argument as ``huggingface_hub`` takes it: one glob string stays one pattern (``list("*.json")``
    would split it into one-character patterns, and ``"*"`` alone matches every file), any other sequence becomes
    a list."""
    if patterns is None or isinstance(patterns, str):
        return patterns
    return list(patterns)


def local_folder(
    repo_id_or_path: str | Path, what: str, *, allow_patterns: Sequence[str] | str | None = None, **hub_kwargs: Any
) -> Path:
    """The folder of a saved object: ``repo_id_or_path`` itself when it is a local folder, else the download of
    the ``allow_patterns`` files of that Hub repo. Anything else is a ``FileNotFoundError`` naming ``what``."""
    path = str(repo_id_or_path)
    if os.path.isdir(path):
        return Path(path)
    if not is_repo_id(path):
        raise FileNotFoundError(
            f"{path!r} is neither a local folder nor a Hub repo id ('owner/name'). Pass the folder "
            f"written by {what}.save_pretrained, or a Hub repo id."
        )
    return download_folder(path, allow_patterns=allow_patterns, **hub_kwargs)


def download_folder(
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    allow_patterns: Sequence[str] | str | None = None,
) -> Path:
    """Download (the ``allow_patterns`` files of) a model repo and return its local folder.

    Hub and connection errors become a ``FileNotFoundError`` that says what to check.
    """
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            allow_patterns=_hub_patterns(allow_patterns),
            library_name="hf_saerl",
            library_version=__version__,
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, OSError) as e:
        raise FileNotFoundError(
            f"Could not fetch {repo_id!r} from the Hugging Face Hub ({type(e).__name__}: {e}). Check the repo id, "
            "the revision and your token and connection (HF_HUB_OFFLINE must be unset to download), or pass the "
            "path of a local folder instead."
        ) from e
    return Path(folder)


def upload_folder(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str = "Upload with hf_saerl",
    commit_description: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    allow_patterns: Sequence[str] | str | None = None,
    ignore_patterns: Sequence[str] | str | None = None,
    delete_patterns: Sequence[str] | str | None = None,
) -> CommitInfo:
    """Create the repo if needed (``exist_ok=True``) and upload ``folder`` as one commit.

    The patterns are ``HfApi.upload_folder``'s: which local files to upload, which to skip, and which remote files
    to delete in the same commit. Returns the ``CommitInfo`` of ``HfApi.upload_folder``.
    """
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, repo_type=repo_type, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type=repo_type,
        commit_message=commit_message,
        commit_description=commit_description,
        revision=revision,
        create_pr=create_pr,
        allow_patterns=_hub_patterns(allow_patterns),
        ignore_patterns=_hub_patterns(ignore_patterns),
        delete_patterns=_hub_patterns(delete_patterns),
    )


_Loaded = TypeVar("_Loaded", bound="HubLoadMixin")


class HubLoadMixin:
    """``from_pretrained`` / ``_from_pretrained`` for the ``ModelHubMixin`` classes of hf_saerl (estimators, the
    preference audit, the pipeline), written once.

    Both gather ``huggingface_hub``'s download options (``revision``, ``cache_dir``, ``force_download``,
    ``local_files_only``, ``token``) into one dict and call the class's
    ``_load_pretrained(model_id, hub, **kwargs)`` with it and every other keyword argument (which the class
    documents there). ``from_pretrained`` first checks that the source is a folder or a repo id
    (:func:`~hf_saerl.core.files.check_path_or_repo_id`) unless the class sets ``_check_pretrained_source`` to
    False (it checks on its own). List it before ``ModelHubMixin`` among the bases.

    Example:
        >>> class Saved(HubLoadMixin):
        ...     @classmethod
        ...     def _load_pretrained(cls, model_id, hub, **kwargs):
        ...         return model_id, hub["revision"], kwargs
        >>> Saved.from_pretrained(".", revision="v1", colour="red")
        ('.', 'v1', {'colour': 'red'})
    """

    _check_pretrained_source = True

    @classmethod
    def from_pretrained(
        cls: type[_Loaded],
        pretrained_model_name_or_path: str | Path,
        *,
        force_download: bool = False,
        token: str | bool | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        revision: str | None = None,
        **kwargs: Any,
    ) -> _Loaded:
        """Load a saved object from a local folder or a Hub repo id (``huggingface_hub`` keyword arguments such as
        ``revision``, ``token``, ``local_files_only`` apply); other keyword arguments are the class's own (see its
        ``_load_pretrained``)."""
        from .files import check_path_or_repo_id

        model_id = str(pretrained_model_name_or_path)
        if cls._check_pretrained_source:
            model_id = check_path_or_repo_id(model_id)
        return cls._from_pretrained(
            model_id=model_id,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            **kwargs,
        )

    @classmethod
    def _from_pretrained(
        cls: type[_Loaded],
        *,
        model_id: str,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **kwargs: Any,
    ) -> _Loaded:
        """Load from a local folder or a Hub repo id: ``cls._load_pretrained(model_id, hub, **kwargs)``."""
        hub: dict[str, Any] = {
            "revision": revision,
            "cache_dir": cache_dir,
            "force_download": force_download,
            "local_files_only": local_files_only,
            "token": token,
        }
        return cls._load_pretrained(str(model_id), hub, **kwargs)  # type: ignore[attr-defined]  # each class's own
