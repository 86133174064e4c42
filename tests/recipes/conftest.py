"""The ``recipe`` fixture: ``recipes/<RECIPE>.py`` imported as a module, for the test module that names it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.fixture(scope="module")
def recipe(request):
    """The recipe named by the test module's ``RECIPE`` (registered in ``sys.modules`` while its tests run, so
    dataclasses and pickling work)."""
    name = request.module.RECIPE
    spec = importlib.util.spec_from_file_location(f"{name}_recipe", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)
