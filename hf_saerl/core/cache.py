"""Where hf_saerl keeps what it computes once and reuses: ``$HF_SAERL_CACHE``, else ``~/.cache/hf_saerl``.

Below it, ``saes/`` holds locally trained SAEs (:mod:`hf_saerl.encoding.sae_training`) and ``datasets/`` the demo's
input datasets, saved to disk so that ``datasets``' own cache of ``map`` results applies to them.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$HF_SAERL_CACHE`` if set, else ``~/.cache/hf_saerl``."""
    env = os.environ.get("HF_SAERL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hf_saerl"
