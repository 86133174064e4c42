"""Prompts → the policy's own pass rates: sample completions, verify them, choose which rows to label.

- :mod:`.backends`: the ``Generator`` protocol; transformers (continuous batching, seeded per prompt) and vLLM
  (optional);
- :mod:`.verifiers`: TRL-shaped reward functions with a success threshold: math-verify, reasoning-gym's
  ``score_answer``, any reward function;
- :mod:`.config`: :class:`SamplingConfig` (sampling, adaptive rounds, token budget, prior; presets ``"cpu"`` and
  ``"gpu"``) and :class:`LabelColumns`, free of heavy imports;
- :mod:`.decoding`: continuous batched sampling on a KV cache (finished rows leave, waiting rows join);
- :mod:`.labeller`: :class:`RolloutLabeller`, the ``Dataset.map`` transform that adds ``pass_rate``, its Beta
  posterior (``pass_rate_mean``, ``pass_rate_sd``), ``n_samples``, ``n_correct``, why samples failed
  (``n_wrong``, ``n_no_answer``, ``n_truncated``) and ``n_empty``;
- :mod:`.rounds`, :mod:`.scoring`, :mod:`.progress`: the labeller's sampling rounds (generation, adaptive rounds
  under the token budget), its verifier calls, and its run totals and progress bar;
- :mod:`.budget`: the labelling budget, a seeded random or cluster-stratified subset;
- :mod:`.tasks`: verifiable prompt pools from reasoning-gym as datasets;
- :mod:`.calibration`: a pilot that measures pass rates per reasoning-gym task config and finds the graded ones.
"""

from ..core.lazy import lazy_exports

#: public name -> the module that defines it (imported on first use)
_EXPORTS = {
    "Completion": "hf_saerl.rollouts.backends",
    "Generator": "hf_saerl.rollouts.backends",
    "TransformersBackend": "hf_saerl.rollouts.backends",
    "VLLMBackend": "hf_saerl.rollouts.backends",
    "select_for_labelling": "hf_saerl.rollouts.budget",
    "split_for_labelling": "hf_saerl.rollouts.budget",
    "DEFAULT_INSTRUCTION": "hf_saerl.rollouts.config",
    "LabelColumns": "hf_saerl.rollouts.config",
    "SamplingConfig": "hf_saerl.rollouts.config",
    "decode": "hf_saerl.rollouts.decoding",
    "RolloutLabeller": "hf_saerl.rollouts.labeller",
    "beta_posterior": "hf_saerl.rollouts.labels",
    "failure_kind": "hf_saerl.rollouts.labels",
    "reasoning_gym_dataset": "hf_saerl.rollouts.tasks",
    "MathVerifier": "hf_saerl.rollouts.verifiers",
    "ReasoningGymVerifier": "hf_saerl.rollouts.verifiers",
    "RewardFunctionVerifier": "hf_saerl.rollouts.verifiers",
    "VerificationError": "hf_saerl.rollouts.verifiers",
    "Verifier": "hf_saerl.rollouts.verifiers",
    "extract_final_answer": "hf_saerl.rollouts.verifiers",
    "calibrate_pool": "hf_saerl.rollouts.calibration",
    "parse_task_config": "hf_saerl.rollouts.calibration",
    "TaskConfig": "hf_saerl.rollouts.calibration",
    "PoolCalibration": "hf_saerl.rollouts.calibration",
    "ConfigCalibration": "hf_saerl.rollouts.calibration",
    "PILOT_CONFIGS": "hf_saerl.rollouts.calibration",
    "find_final_answer": "hf_saerl.rollouts.verifiers",
}
__getattr__, __dir__, __all__ = lazy_exports(globals(), _EXPORTS)
