"""Stage 2, prompts → the policy's own pass rates: sample completions, verify them, choose which rows to label.

- :mod:`.backends`: the ``Generator`` protocol; transformers ``generate`` (batched, left-padded, seeded per
  prompt) and vLLM (optional);
- :mod:`.verifiers`: TRL-shaped reward functions with a success threshold: math-verify, reasoning-gym's
  ``score_answer``, any reward function;
- :mod:`.labeller`: :class:`RolloutLabeller`, the ``Dataset.map`` transform that adds ``pass_rate``,
  ``n_samples``, ``n_correct`` and ``n_empty``;
- :mod:`.budget`: the labelling budget, a seeded random or cluster-stratified subset;
- :mod:`.tasks`: verifiable prompt pools from reasoning-gym as datasets.
"""

from .backends import Generator, TransformersBackend, VLLMBackend
from .budget import select_for_labelling, split_for_labelling
from .labeller import DEFAULT_INSTRUCTION, RolloutLabeller
from .tasks import reasoning_gym_dataset
from .verifiers import (
    MathVerifier,
    ReasoningGymVerifier,
    RewardFunctionVerifier,
    VerificationError,
    Verifier,
    extract_final_answer,
)

__all__ = [
    "DEFAULT_INSTRUCTION",
    "Generator",
    "MathVerifier",
    "ReasoningGymVerifier",
    "RewardFunctionVerifier",
    "RolloutLabeller",
    "TransformersBackend",
    "VLLMBackend",
    "VerificationError",
    "Verifier",
    "extract_final_answer",
    "reasoning_gym_dataset",
    "select_for_labelling",
    "split_for_labelling",
]
