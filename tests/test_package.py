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
