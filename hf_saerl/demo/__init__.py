"""The worked example (``hf-saerl demo``): SmolLM2 + a reasoning-gym RL pool + CHAMP + a local SAE, with plots.

Nothing in the library imports this package; it only uses the library, as a user would.

- :mod:`.run`: :class:`DemoConfig` and :func:`run_demo`;
- :mod:`.champ`: CHAMP loaders, the answer grader and the datasets built on it (quality negatives, pairs);
- :mod:`.presets`: the RL pool's reasoning-gym tasks, the SAE's training texts and the CI preset;
- :mod:`.plots`: the report's figures.
"""

from ..core.lazy import lazy_exports

#: public name -> the module that defines it (imported on first use)
_EXPORTS = {
    "DemoConfig": "hf_saerl.demo.run",
    "run_demo": "hf_saerl.demo.run",
}
__getattr__, __dir__, __all__ = lazy_exports(globals(), _EXPORTS)
