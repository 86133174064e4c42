"""Benchmarks of hf_saerl, one script per stage; ``python -m benchmarks [--quick]`` runs them all (see __main__)."""
