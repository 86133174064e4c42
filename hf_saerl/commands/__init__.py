"""Subcommands of the ``hf-saerl`` CLI, one module each (see :mod:`hf_saerl.cli`)."""
