"""Integrations: trainers for the SAERL curriculum and the preference audit, and Ray Data for scale. Each module imports its trainer library only when imported.

- :mod:`hf_saerl.integrations.trl`: ``CurriculumGRPOTrainer`` (TRL ``GRPOTrainer`` on the curriculum order, prompt
  groups intact) and ``grpo_curriculum_batch_size``.
- :mod:`hf_saerl.integrations.transformers`: ``CurriculumTrainer`` (HF ``Trainer``) and
  ``trainer_curriculum_batch_size``.
- :mod:`hf_saerl.integrations.verl`: ``to_verl_parquet`` (a pre-ordered Parquet in verl's row format) and
  ``verl_overrides`` (the config switches that make verl read it in order).

- :mod:`hf_saerl.integrations.dpo`: ``ConceptShapedDPOTrainer`` (TRL ``DPOTrainer`` with λ·concept_margin
  added to the preference logit, the reward shaping of the preference audit).

- :mod:`hf_saerl.integrations.ray`: ``map_batches`` (any hf_saerl transform on Ray Data in an actor pool,
  GPU actors with ``num_gpus=``, input columns kept).

See docs/curriculum.md and docs/preference_audit.md.
"""
