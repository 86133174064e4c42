"""hf_saerl: curate post-training data with sparse-autoencoder features, inside Hugging Face datasets.

The public API is re-exported here and imported lazily, so ``import hf_saerl`` stays fast: torch,
transformers and sae-lens load only when the object that needs them is first used.

Example:
    >>> import hf_saerl
    >>> hf_saerl.sparse_matrix({"sae_indices": [[2]], "sae_values": [[1.5]]}, d_sae=3).toarray()
    array([[0. , 0. , 1.5]], dtype=float32)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__
from .core.lazy import lazy_exports

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "sparse_matrix": "hf_saerl.encoding.sparse",
    "SAEEncoder": "hf_saerl.encoding.encoder",
    "load_model": "hf_saerl.models.loading",
    "default_model_spec": "hf_saerl.models.embedded",
    "load_sae": "hf_saerl.encoding.saes",
    "resolve_hook": "hf_saerl.encoding.hooks",
    "QualityProbe": "hf_saerl.estimators.probes",
    "DifficultyProbe": "hf_saerl.estimators.probes",
    "SAEClusterer": "hf_saerl.estimators.clustering",
    "build_schedule": "hf_saerl.curriculum",
    "describe_schedule": "hf_saerl.curriculum",
    "CurriculumDataset": "hf_saerl.curriculum",
    "CurriculumSampler": "hf_saerl.curriculum",
    "CurriculumBatchSampler": "hf_saerl.curriculum",
    "SAERLPipeline": "hf_saerl.pipeline",
    "push_curated": "hf_saerl.pipeline.curated",
    "build_dataset_card": "hf_saerl.pipeline.curated",
    "PreferenceAudit": "hf_saerl.audit",
    "AuditReport": "hf_saerl.audit",
    "filter_pairs": "hf_saerl.audit",
    "add_pair_weights": "hf_saerl.audit",
    "add_concept_margin": "hf_saerl.audit",
    "dpo_loss": "hf_saerl.audit",
    "train_sae": "hf_saerl.encoding.sae_training",
    "RolloutLabeller": "hf_saerl.rollouts",
    "MathVerifier": "hf_saerl.rollouts",
    "ReasoningGymVerifier": "hf_saerl.rollouts",
    "RewardFunctionVerifier": "hf_saerl.rollouts",
    "select_for_labelling": "hf_saerl.rollouts",
    "split_for_labelling": "hf_saerl.rollouts",
    "reasoning_gym_dataset": "hf_saerl.rollouts",
}
__getattr__, __dir__, __all__ = lazy_exports(globals(), _EXPORTS, also=("__version__",))


if TYPE_CHECKING:  # pragma: no cover
    from .audit import AuditReport, PreferenceAudit, add_concept_margin, add_pair_weights, dpo_loss, filter_pairs
    from .estimators.clustering import SAEClusterer
    from .curriculum import (
        CurriculumBatchSampler,
        CurriculumDataset,
        CurriculumSampler,
        build_schedule,
        describe_schedule,
    )
    from .encoding.encoder import SAEEncoder
    from .pipeline.curated import build_dataset_card, push_curated
    from .pipeline.pipeline import SAERLPipeline
    from .rollouts import (
        MathVerifier,
        ReasoningGymVerifier,
        RewardFunctionVerifier,
        RolloutLabeller,
        reasoning_gym_dataset,
        select_for_labelling,
        split_for_labelling,
    )
    from .estimators.probes import DifficultyProbe, QualityProbe
    from .encoding.sae_training import train_sae
    from .encoding.hooks import resolve_hook
    from .encoding.saes import load_sae
    from .encoding.sparse import sparse_matrix
    from .models.embedded import default_model_spec
    from .models.loading import load_model
