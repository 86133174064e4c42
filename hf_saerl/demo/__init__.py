"""The worked example (``hf-saerl demo``): SmolLM2 + CHAMP + a locally trained SAE, with its report and plots.

Nothing in the library imports this package; it only uses the library, as a user would.

- :mod:`.run`: :class:`DemoConfig` and :func:`run_demo`;
- :mod:`.champ`: CHAMP loaders, the answer grader and the datasets built on it (quality negatives, pairs);
- :mod:`.presets`: the CHAMP texts and CI preset for the demo's SAE;
- :mod:`.plots`: the report's figures.
"""

from .run import DemoConfig, run_demo

__all__ = ["DemoConfig", "run_demo"]
