"""Rollout defaults that the command line reads without importing torch or datasets."""

from __future__ import annotations

__all__ = ["DEFAULT_INSTRUCTION"]

#: Appended to each prompt unless the labeller is given another instruction (or none).
DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
