"""Stage 2, fit-then-map estimators over SAE features, with scikit-learn manners and pickle-free Hub files.

- :mod:`.base`: :class:`SAEEstimator`, the shared fit/map/save/load machinery;
- :mod:`.transforms`: feature transforms fitted with the estimator (log1p, l2 normalisation, ...);
- :mod:`.probes`: :class:`QualityProbe` (filter) and :class:`DifficultyProbe` (order easy → hard);
- :mod:`.clustering`: :class:`SAEClusterer` (group in SAE space).
"""

from .clustering import SAEClusterer
from .probes import DifficultyProbe, QualityProbe

__all__ = ["DifficultyProbe", "QualityProbe", "SAEClusterer"]
