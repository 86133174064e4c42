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

from ._version import __version__ as __version__
from .core.lazy import lazy_exports

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "sparse_matrix": "hf_saerl.encoding.sparse",
    "SAEEncoder": "hf_saerl.encoding.encoder",
    "FeatureColumns": "hf_saerl.encoding.config",
    "TokenPolicy": "hf_saerl.encoding.config",
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
    "LearnabilitySelector": "hf_saerl.selection",
    "SelectionConfig": "hf_saerl.selection",
}
__getattr__, __dir__, __all__ = lazy_exports(globals(), _EXPORTS, also=("__version__",))


if TYPE_CHECKING:  # pragma: no cover
    # The defining modules (the subpackages' own names are lazy too), with redundant aliases that mark the names as
    # re-exports for type checkers (mypy's no_implicit_reexport, pyright on a py.typed package). At run time
    # __getattr__ above imports each on first use.
    from .audit.interventions import add_concept_margin as add_concept_margin
    from .audit.interventions import add_pair_weights as add_pair_weights
    from .audit.interventions import filter_pairs as filter_pairs
    from .audit.preference import PreferenceAudit as PreferenceAudit
    from .audit.report import AuditReport as AuditReport
    from .audit.shaping import dpo_loss as dpo_loss
    from .curriculum.dataset import CurriculumDataset as CurriculumDataset
    from .curriculum.sampler import CurriculumBatchSampler as CurriculumBatchSampler
    from .curriculum.sampler import CurriculumSampler as CurriculumSampler
    from .curriculum.schedule import build_schedule as build_schedule
    from .curriculum.schedule import describe_schedule as describe_schedule
    from .encoding.config import FeatureColumns as FeatureColumns
    from .encoding.config import TokenPolicy as TokenPolicy
    from .encoding.encoder import SAEEncoder as SAEEncoder
    from .encoding.hooks import resolve_hook as resolve_hook
    from .encoding.sae_training import train_sae as train_sae
    from .encoding.saes import load_sae as load_sae
    from .encoding.sparse import sparse_matrix as sparse_matrix
    from .estimators.clustering import SAEClusterer as SAEClusterer
    from .estimators.probes import DifficultyProbe as DifficultyProbe
    from .estimators.probes import QualityProbe as QualityProbe
    from .models.embedded import default_model_spec as default_model_spec
    from .models.loading import load_model as load_model
    from .pipeline.curated import build_dataset_card as build_dataset_card
    from .pipeline.curated import push_curated as push_curated
    from .pipeline.pipeline import SAERLPipeline as SAERLPipeline
    from .rollouts.budget import select_for_labelling as select_for_labelling
    from .rollouts.budget import split_for_labelling as split_for_labelling
    from .rollouts.labeller import RolloutLabeller as RolloutLabeller
    from .rollouts.tasks import reasoning_gym_dataset as reasoning_gym_dataset
    from .rollouts.verifiers import MathVerifier as MathVerifier
    from .rollouts.verifiers import ReasoningGymVerifier as ReasoningGymVerifier
    from .rollouts.verifiers import RewardFunctionVerifier as RewardFunctionVerifier
    from .selection.config import SelectionConfig as SelectionConfig
    from .selection.selector import LearnabilitySelector as LearnabilitySelector
