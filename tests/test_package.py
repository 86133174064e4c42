"""The package surface: every public name resolves, and ``import hf_saerl`` stays light."""

from __future__ import annotations

import subprocess
import sys

import hf_saerl


def test_every_export_resolves():
    for name in hf_saerl.__all__:
        assert getattr(hf_saerl, name) is not None, name
    assert sorted(dir(hf_saerl)) == sorted(hf_saerl.__all__)


def test_import_is_light():
    code = "import sys, hf_saerl; print(sorted(m for m in ('torch', 'sae_lens', 'transformers', 'datasets') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_cli_help_lists_the_demo_and_exits_cleanly(capsys):
    from hf_saerl.cli import main

    assert main([]) == 2
    assert "demo" in capsys.readouterr().out
    out = subprocess.run([sys.executable, "-m", "hf_saerl", "demo", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--ci" in out.stdout


def test_cli_help_and_version_import_neither_torch_nor_transformers():
    """``hf-saerl --help`` starts fast: building the parser (every subcommand's flags and defaults) and
    ``--version`` load no heavy library; each command imports what it needs when it runs."""
    code = (
        "import sys, contextlib, io\n"
        "from hf_saerl.cli import build_parser\n"
        "parser = build_parser()\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    parser.parse_args(['--version'])\n"
        "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'sae_lens', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def _type_checking_imports() -> dict[str, tuple[str, str | None]]:
    """``name -> (module, alias)`` of the imports under ``if TYPE_CHECKING:`` in ``hf_saerl/__init__.py``."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(hf_saerl.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING")
    found = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.dump(node)
        for alias in node.names:
            found[alias.name] = (f"hf_saerl.{node.module}", alias.asname)
    return found


def test_type_checkers_see_every_export_at_its_defining_module():
    """A type checker reads the ``TYPE_CHECKING`` imports, not ``__getattr__``. Each public name must be imported
    there with a redundant alias (``X as X``: a re-export under mypy's ``no_implicit_reexport`` and for pyright on
    a ``py.typed`` package) from the module that defines it (the subpackages re-export lazily too, so importing
    from them would give type checkers ``Any``). A name that moves fails here rather than typing as ``Any``."""
    imports = _type_checking_imports()
    assert set(imports) == set(hf_saerl._EXPORTS)
    for name, (module, alias) in imports.items():
        assert alias == name, f"{name}: import it as 'from {module} import {name} as {name}'"
        assert getattr(hf_saerl, name).__module__ == module, name


def test_py_typed_marker_ships_with_the_package():
    """PEP 561: the marker sits in the package folder, and the build config lists it as package data."""
    from pathlib import Path

    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    package = Path(hf_saerl.__file__).parent
    assert (package / "py.typed").is_file()
    pyproject = package.parent / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("installed package: no pyproject.toml beside it")
    config = tomllib.loads(pyproject.read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["hf_saerl"]
