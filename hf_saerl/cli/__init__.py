"""The ``hf-saerl`` command line (also ``python -m hf_saerl``).

Each subcommand lives in its own module under :mod:`hf_saerl.cli` (``demo``, ``train_sae``, ``label``, ``fit``,
``augment``, ``push``, ``inspect``) and exposes ``register(subparsers)``, which adds its parser and sets ``func``
(``args -> exit code``). :func:`main` runs it under the error contract of :func:`hf_saerl.cli.common.guard`.

Exit codes: 0 success, 1 the job failed (a refused bundle, bad data, a missing file or model, the Hub said no or is
out of reach), 2 bad command-line usage; a failure prints one line, and its traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .._version import __version__

#: Modules that register subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "hf_saerl.cli.demo",
    "hf_saerl.cli.train_sae",
    "hf_saerl.cli.label",
    "hf_saerl.cli.calibrate",
    "hf_saerl.cli.fit",
    "hf_saerl.cli.augment",
    "hf_saerl.cli.push",
    "hf_saerl.cli.inspect",
)
DEBUG_HELP = "print the traceback of a failure (by default a failure is one line)"


def build_parser() -> argparse.ArgumentParser:
    """The ``hf-saerl`` parser with every subcommand of :data:`COMMAND_MODULES`."""
    parser = argparse.ArgumentParser(
        prog="hf-saerl",
        description="Curate post-training data with sparse-autoencoder features of an LLM, inside Hugging Face datasets.",
    )
    parser.add_argument("--version", action="version", version=f"hf_saerl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    for sub in subparsers.choices.values():  # also after the command: hf-saerl fit ... --debug
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; returns its exit code (argparse's errors exit with code 2)."""
    from .common import USAGE_EXIT, guard

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return USAGE_EXIT
    return guard(args.func)(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
