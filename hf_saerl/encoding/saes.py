"""Load a sae-lens SAE and read what it records: the hook it was trained on, its first token position, its identity.

An SAE reference is ``(release, sae_id)``, a local folder written by ``SAE.save_model`` or an ``SAE`` object.
sae-lens is imported only when an SAE has to be loaded, since it pulls in TransformerLens (several seconds of
import time). sae-lens folders are ``cfg.json`` + safetensors, so nothing here unpickles, and every loaded SAE is
checked for NaN and infinity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..core.fingerprint import module_digest, path_digest
from ..errors import InvalidParameterError
from ..models.loading import check_weights_finite, is_model_spec

__all__ = ["load_sae", "sae_hook_name", "sae_identity", "sae_pool_start", "sae_reference"]

SAESpec = Any  # (release, sae_id) | str | os.PathLike | sae_lens.SAE


def sae_reference(sae: Any) -> tuple[str, str] | str | None:
    """The reference an SAE can be loaded again from: ``(release, sae_id)`` as a tuple of str, a local folder
    as a str, or ``None`` for an in-memory SAE (which then travels as config + weights).

    Example:
        >>> sae_reference(("gpt2-small-res-jb", "blocks.8.hook_resid_pre")), sae_reference(object())
        (('gpt2-small-res-jb', 'blocks.8.hook_resid_pre'), None)
    """
    if isinstance(sae, tuple):
        return (str(sae[0]), str(sae[1])) if len(sae) == 2 else sae
    if is_model_spec(sae):
        return str(Path(sae))
    return None


def load_sae(sae: SAESpec, device: torch.device | str = "cpu") -> Any:
    """Load a sae-lens SAE from ``(release, sae_id)`` (a sae-lens release name or a Hub repo id with
    the SAE's folder), from a local folder written by ``SAE.save_model``, or pass an ``SAE`` through.

    Example:
        >>> sae = load_sae(("gpt2-small-res-jb", "blocks.8.hook_resid_pre"))  # doctest: +SKIP
    """
    if isinstance(sae, tuple):
        if len(sae) != 2:
            raise InvalidParameterError(
                f"An SAE reference is (release, sae_id); got a tuple of {len(sae)} items. Pass "
                "both parts, or a local sae-lens folder, or a sae_lens.SAE object."
            )
        from sae_lens import SAE

        loaded = SAE.from_pretrained(sae[0], sae[1], device=str(device)).eval()
        return check_weights_finite(loaded, f"the SAE {sae[0]!r} / {sae[1]!r}")
    if is_model_spec(sae):
        path = Path(sae)
        if not (path / "cfg.json").is_file():
            raise FileNotFoundError(
                f"{path} is not a sae-lens SAE folder (no cfg.json). Pass a folder written by "
                "SAE.save_model(...), a (release, sae_id) tuple, or an SAE object."
            )
        from sae_lens import SAE

        return check_weights_finite(
            SAE.load_from_disk(str(path), device=str(device)).eval(), f"the SAE in {str(path)!r}"
        )
    if not (hasattr(sae, "encode") and hasattr(sae, "cfg")):
        raise TypeError(
            f"sae must be a (release, sae_id) tuple, a sae-lens folder or a sae_lens.SAE, got {type(sae).__name__}."
        )
    sae = sae.eval() if hasattr(sae, "eval") else sae
    return check_weights_finite(sae, f"the SAE {type(sae).__name__}") if hasattr(sae, "named_parameters") else sae


def sae_hook_name(sae: Any) -> str | None:
    """The hook the SAE was trained on: ``cfg.metadata.hf_hook_name`` if set, else ``hook_name``."""
    metadata = getattr(sae.cfg, "metadata", None)
    if metadata is None:
        return getattr(sae.cfg, "hook_name", None)
    return metadata.get("hf_hook_name") or metadata.get("hook_name")


def sae_pool_start(sae: Any) -> int:
    """The first token position the SAE was trained on: the start of ``cfg.metadata.seqpos_slice``
    (sae-lens records it; 0 when absent). SAEs trained without position 0 have never seen the
    attention-sink activation there, whose norm can be 100x the others' (e.g. SmolLM2, whose
    tokenizer adds no BOS), so it is not pooled either.

    Example:
        >>> from hf_saerl.testing import tiny_sae
        >>> sae = tiny_sae()
        >>> sae_pool_start(sae)
        0
        >>> sae.cfg.metadata.seqpos_slice = (1, None)
        >>> sae_pool_start(sae)
        1
    """
    metadata = getattr(sae.cfg, "metadata", None)
    seqpos = metadata.get("seqpos_slice") if metadata is not None and hasattr(metadata, "get") else None
    start = seqpos[0] if seqpos else None
    return int(start) if isinstance(start, int) and start > 0 else 0


def sae_identity(spec: Any, sae: Any) -> Any:
    """The SAE's identity: a ``(release, sae_id)`` reference as a list, the content digest of a local folder,
    or the weights' digest of the in-memory ``sae`` when ``spec`` is None."""
    if isinstance(spec, tuple):
        return list(spec)
    if isinstance(spec, str):
        return path_digest(spec)
    return module_digest(sae)
