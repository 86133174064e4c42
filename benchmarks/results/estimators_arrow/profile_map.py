"""cProfile of QualityProbe's Dataset.map(batched=True, batch_size=1000) on 20,000 synthetic rows (d_sae 4096,
top-64): where the time of the Arrow-native path goes (our reading + transform vs datasets' own writing)."""

import cProfile
import os
import pstats
import sys

sys.path.insert(0, "benchmarks")
import datasets
from bench_estimators import codes, to_dataset

from hf_saerl import QualityProbe

datasets.disable_caching()
datasets.disable_progress_bars()
X, q, _, nt = codes(20000, 4096, 64)
ds = to_dataset(X, nt)
p = QualityProbe(4096, cv=None).fit(X[:2000], q[:2000])
ds.map(p, batched=True, batch_size=1000)  # warm-up
print("load:", os.getloadavg())
cProfile.run("ds.map(p, batched=True, batch_size=1000)", "/tmp/est_prof.out")
cProfile.run("p.transform_.transform(X) @ p.coef_", "/tmp/est_prof_np.out")
pstats.Stats("/tmp/est_prof.out").sort_stats("cumtime").print_stats(18)
pstats.Stats("/tmp/est_prof_np.out").sort_stats("cumtime").print_stats(3)
