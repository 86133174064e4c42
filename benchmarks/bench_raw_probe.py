"""Mapping a probe with ``feature_set="raw"``: the raw column read from the Arrow buffers vs through Python lists.

A dataset of ``--rows`` rows holds ``--width`` pooled raw activations per row (576: SmolLM2-135M's hidden size) as
the fixed-size float32 list column ``SAEEncoder(..., columns=FeatureColumns(activations=...))`` writes. A
``QualityProbe`` fitted on 2,000 of them maps the whole dataset two ways: ``ds.map(probe, batched=True)`` (the Arrow reader) and
``ds.map(lambda b: probe(dict(b)), batched=True)`` (the batch turned into Python lists first, the path the Arrow
reader replaced). Both must give identical columns; the best of ``--repeats`` wall times is reported.

    python benchmarks/bench_raw_probe.py --rows 20000 --out benchmarks/results/feature_sets/raw_probe_map.json
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from benchutil import header, timed, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--width", type=int, default=576)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    header("QualityProbe(feature_set='raw') through Dataset.map: Arrow reader vs Python lists")

    from datasets import Dataset, Features, List, Value, disable_caching

    from hf_saerl import QualityProbe

    disable_caching()
    rng = np.random.default_rng(args.seed)
    acts = rng.normal(size=(args.rows, args.width)).astype(np.float32)
    good = acts[:, 0] + 0.5 * rng.normal(size=args.rows) > 0
    features = Features({"acts": List(Value("float32"), length=args.width), "good": Value("bool")})
    ds = Dataset.from_dict({"acts": acts, "good": good}, features=features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = QualityProbe(d_sae=1, feature_set="raw", raw_column="acts", cv=None)
        probe.fit(ds.select(range(2000)), label_column="good")

    def arrow() -> np.ndarray:
        return np.asarray(ds.map(probe, batched=True, batch_size=args.batch_size)["quality"])

    def lists() -> np.ndarray:
        mapped = ds.map(lambda b: probe(dict(b)), batched=True, batch_size=args.batch_size, features=None)
        return np.asarray(mapped["quality"])

    arrow_s, arrow_cpu, a = timed(arrow, args.repeats)
    lists_s, lists_cpu, b = timed(lists, args.repeats)
    identical = bool(np.array_equal(a, b))
    results = {
        "arrow_s": round(arrow_s, 3),
        "arrow_cpu_s": round(arrow_cpu, 3),
        "lists_s": round(lists_s, 3),
        "lists_cpu_s": round(lists_cpu, 3),
        "speedup": round(lists_s / arrow_s, 2),
        "identical_columns": identical,
    }
    print(results)
    if not identical:
        raise SystemExit("the two paths gave different columns")
    write_json(args.out, "raw_probe_map", args, results)


if __name__ == "__main__":
    main()
