"""Online learnability selection: which prompts to generate for next, from an SAE prior and the policy's rollouts.

- :class:`LearnabilitySelector`: a Beta posterior per prompt, prior from a pass-rate proxy on SAE features (refitted
  online), Thompson-sampled ``p(1 - p)`` batches with cluster coverage, fading and an exploration floor; resumable.
- :class:`SelectionConfig`: its knobs. :class:`LinearProxy`: the refittable prior. :func:`beta_prior`: the prior
  strength a measured error implies.

Trainer adapters (TRL, plain PyTorch, verl notes) live in :mod:`hf_saerl.integrations.selection`.
"""

from ..core.lazy import lazy_exports

#: public name -> the module that defines it (imported on first use)
_EXPORTS = {
    "LearnabilitySelector": "hf_saerl.selection.selector",
    "beta_prior": "hf_saerl.selection.selector",
    "SelectionConfig": "hf_saerl.selection.config",
    "LinearProxy": "hf_saerl.selection.proxy",
}
__getattr__, __dir__, __all__ = lazy_exports(globals(), _EXPORTS)
