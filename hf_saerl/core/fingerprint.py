"""Cheap, deterministic fingerprints for transforms that hold large weights.

``datasets`` fingerprints a ``map`` by dill-pickling the callable and hashing the bytes, which for a
model-holding transform means copying every weight to host memory on every ``map`` call (bf16 is
even upcast to fp32). Transforms here instead hash a small, explicit description: their
configuration plus a digest of the weights' identity (a Hub id and revision, a content sample of the
files on disk, or a strided sample of an in-memory module's tensors).

Subclasses of :class:`Fingerprinted` are registered with ``datasets``' hashing pickler, so
``Dataset.map(transform)`` hashes ``transform.fingerprint`` instead of the object. Ordinary
pickling (``num_proc`` workers, Ray actors) is unaffected.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

_SAMPLE_BYTES = 1 << 16
_SAMPLE_VALUES = 256


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short hex digest of a JSON-able object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def transform_map_kwargs(
    transform: Any, dataset: Any, *, batch_size: int, desc: str | None, map_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The keyword arguments of ``dataset.map(transform, ...)`` for an hf_saerl transform (one with ``fingerprint``
    and ``output_features``): ``batched=True`` with the declared output features and, for a map-style
    ``datasets.Dataset``, a ``desc``, a cheap ``new_fingerprint`` (the dataset's, the transform's and the map
    arguments', so the model's weights are never hashed) and ``with_rank=True`` when ``num_proc > 1``.
    The caller's ``map_kwargs`` win over these defaults."""
    from datasets import Dataset

    from .serialization import jsonable

    features = transform.output_features(dataset.features, map_kwargs.get("remove_columns") or ())
    kwargs = dict(batched=True, batch_size=batch_size, features=features, **map_kwargs)
    if isinstance(dataset, Dataset):
        kwargs.setdefault("desc", desc)
        key = [dataset._fingerprint, transform.fingerprint, jsonable(map_kwargs), batch_size]
        kwargs.setdefault("new_fingerprint", stable_hash(key, 32))
        if (kwargs.get("num_proc") or 1) > 1:
            kwargs.setdefault("with_rank", True)
    return kwargs


def path_digest(path: str | os.PathLike) -> str:
    """Digest of a file or folder by content sample: names, sizes, and the first and last 64 KiB of each
    file. The location itself is not hashed, so a copied folder gives the same digest."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts)
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.relative_to(path) if f != path else f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(_SAMPLE_BYTES))
            if size > 2 * _SAMPLE_BYTES:
                fh.seek(size - _SAMPLE_BYTES)
                h.update(fh.read(_SAMPLE_BYTES))
    return h.hexdigest()[:16]


def module_digest(module: Any) -> str:
    """Digest of an in-memory ``torch.nn.Module``: its class, config, and for every tensor of its
    state dict the name, shape, dtype and a strided sample of up to 256 values. Cheap on any device."""
    import torch

    h = hashlib.sha256(type(module).__qualname__.encode())
    config = getattr(module, "config", None) or getattr(module, "cfg", None)
    if config is not None:
        as_dict = config.to_dict() if hasattr(config, "to_dict") else vars(config)
        as_dict = {k: v for k, v in as_dict.items() if k not in ("transformers_version", "device", "_name_or_path")}
        h.update(stable_hash(as_dict, 64).encode())
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            flat = tensor.detach().reshape(-1)
            if flat.numel():
                step = max(1, flat.numel() // _SAMPLE_VALUES)
                sample = flat[::step][:_SAMPLE_VALUES].to("cpu", torch.float32)
                h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]


class Fingerprinted:
    """Mixin: ``datasets`` hashes ``self.fingerprint`` (a short string) instead of the whole object."""

    @property
    def fingerprint(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register_with_datasets(cls)


def _fingerprint_token(cls_name: str, fingerprint: str) -> str:
    return f"{cls_name}:{fingerprint}"


def _register_with_datasets(cls: type) -> None:
    try:
        from datasets.utils._dill import pklregister
    except ImportError:  # pragma: no cover - datasets without the private hook: plain hashing applies
        return

    def save(pickler: Any, obj: Any) -> None:
        pickler.save_reduce(_fingerprint_token, (type(obj).__qualname__, obj.fingerprint), obj=obj)

    pklregister(cls)(save)
