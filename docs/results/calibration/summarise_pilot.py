"""Write ``smollm2_pilot/pilot.md``: the per-config table of the SmolLM2 pilot from what ``hf-saerl calibrate`` saved
(``calibration.json`` when the run finished, else ``calibration.partial.json``: the configs measured before it was
stopped), plus the first, stopped run's gcd row as its log printed it.

Run from the repository root: ``python docs/results/calibration/summarise_pilot.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent / "smollm2_pilot"


def main() -> None:
    full, partial = HERE / "calibration.json", HERE / "calibration.partial.json"
    data = json.loads((full if full.exists() else partial).read_text())
    lines = [
        "| config | family | prompts x samples | mean pass rate | never solved | in band 0.1-0.9 | always solved "
        "| cut off at 32 tokens | tokens | seconds | graded |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in data["configs"]:
        graded = 0.1 <= c["mean_pass_rate"] <= 0.9 and c["share_in_band"] >= 0.25
        lines.append(
            f"| {c['name']} | {c['family']} | {c['n_prompts']} x {c['n_samples']} | {c['mean_pass_rate']:.3f} "
            f"| {c['share_never']:.0%} | {c['share_in_band']:.0%} | {c['share_always']:.0%} "
            f"| {c['share_truncated']:.0%} | {c['tokens']} | {c['seconds']:.0f} | {'yes' if graded else 'no'} |"
        )
    (HERE / "pilot.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
