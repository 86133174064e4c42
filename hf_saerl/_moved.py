"""Old module paths from before the stage folders (hf_saerl 0.1), kept importable for one release.

``import hf_saerl.encoder`` still works and returns :mod:`hf_saerl.encoding.encoder` itself (same objects, so
``isinstance`` checks hold), with a ``DeprecationWarning`` naming the new path. One finder serves every old
path, so no stub files sit beside the stage folders.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

#: old module path -> the module that now holds its contents
MOVED: dict[str, str] = {
    "hf_saerl.columns": "hf_saerl.core.columns",
    "hf_saerl.fingerprint": "hf_saerl.core.fingerprint",
    "hf_saerl.cache": "hf_saerl.core.cache",
    **{f"hf_saerl.{name}": f"hf_saerl.encoding.{name}" for name in (
        "activations", "batching", "embedded", "encoder", "hooks", "loading", "pooling", "sae_training", "sparse",
        "text")},
    "hf_saerl.estimator_io": "hf_saerl.estimators.base",
    "hf_saerl.feature_transforms": "hf_saerl.estimators.transforms",
    "hf_saerl.probes": "hf_saerl.estimators.probes",
    "hf_saerl.clustering": "hf_saerl.estimators.clustering",
    "hf_saerl.hub": "hf_saerl.pipeline.hub",
    "hf_saerl.commands": "hf_saerl.cli",
    "hf_saerl.commands.hub": "hf_saerl.cli.hub",
    "hf_saerl.commands.train_sae": "hf_saerl.cli.train_sae",
    "hf_saerl.commands.demo": "hf_saerl.cli.demo",
    "hf_saerl.data": "hf_saerl.demo.champ",
    "hf_saerl.data.champ": "hf_saerl.demo.champ",
    "hf_saerl.plots": "hf_saerl.demo.plots",
}


class _MovedModuleLoader(importlib.abc.Loader):
    def __init__(self, new_name: str) -> None:
        self.new_name = new_name

    def create_module(self, spec: importlib.machinery.ModuleSpec):
        warnings.warn(f"{spec.name} moved to {self.new_name}; the old path goes in the next release. "
                      f"Import from {self.new_name} (or from hf_saerl itself) instead.", DeprecationWarning,
                      stacklevel=3)
        module = importlib.import_module(self.new_name)
        sys.modules[spec.name] = module
        return module

    def exec_module(self, module) -> None:  # the new module is already executed
        pass


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Resolves each old path in :data:`MOVED` to the module that replaced it."""

    def find_spec(self, fullname: str, path=None, target=None):
        new_name = MOVED.get(fullname)
        if new_name is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedModuleLoader(new_name),
                                              is_package=fullname in ("hf_saerl.commands", "hf_saerl.data"))


def install() -> None:
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
