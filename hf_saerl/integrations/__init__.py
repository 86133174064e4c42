"""Trainer integrations of the SAERL curriculum. Each module imports its trainer library only when imported.

- :mod:`hf_saerl.integrations.trl`: ``CurriculumGRPOTrainer`` (TRL ``GRPOTrainer`` on the curriculum order, prompt
  groups intact) and ``grpo_curriculum_batch_size``.
- :mod:`hf_saerl.integrations.transformers`: ``CurriculumTrainer`` (HF ``Trainer``) and
  ``trainer_curriculum_batch_size``.
- :mod:`hf_saerl.integrations.verl`: ``to_verl_parquet`` (a pre-ordered Parquet in verl's row format) and
  ``verl_overrides`` (the config switches that make verl read it in order).

See docs/curriculum.md.
"""
