"""The markdown tables of docs/audit_validation.md's re-scoring section, from rescore.json next to this file."""

import json
import math
from pathlib import Path

here = Path(__file__).parent
r = json.loads((here / "rescore.json").read_text())
seeds = list(r["per_seed"])


def f(x, nd=3):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


lines = [
    "| view | n | " + " | ".join(f"{s}: share R² | sign | rate R² | sign" for s in seeds) + " |",
    "|---|---|" + "---|---|---|---|" * len(seeds),
]
for view in ("all", "flagged", "top", "regions", "regions_flagged"):
    row = [view, str(r["per_seed"][seeds[0]]["dpo"]["share"]["metrics"][view]["n"])]
    for s in seeds:
        for score in ("share", "rate"):
            m = r["per_seed"][s]["dpo"][score]["metrics"][view]
            row += [f(m["r2"]), f(m["sign_agreement"], 2)]
    lines.append("| " + " | ".join(row) + " |")
print("\n".join(lines))
print()
lines = [
    "| DPO against the reference | " + " | ".join(f"{s}: share | rate" for s in seeds) + " |",
    "|---|" + "---|---|" * len(seeds),
]
for key, label, nd in (
    ("mean_shift", "mean shift over all concepts", 4),
    ("mean_abs_shift", "mean \\|shift\\|", 4),
    ("reliability", "reliability (1 − mean se² / var of shifts)", 2),
    ("n_abs_z_gt_3", "concepts with \\|shift z\\| > 3", 0),
):
    row = [label]
    for s in seeds:
        for score in ("share", "rate"):
            v = r["per_seed"][s]["dpo"][score]["noise"][key]
            row.append(str(v) if nd == 0 else f(v, nd))
    lines.append("| " + " | ".join(row) + " |")
row = ["rate shift vs the audit's share Δ: R² / sign"]
for s in seeds:
    m = r["per_seed"][s]["dpo"]["rate_shift_vs_share_delta"]
    row += ["", f"{f(m['r2'])} / {f(m['sign_agreement'], 2)}"]
lines.append("| " + " | ".join(row) + " |")
print("\n".join(lines))
if "seed_agreement" in r:
    a = r["seed_agreement"]["dpo"]
    print(f"\nseed 0 vs seed 1 DPO shifts, Pearson r: share {f(a['share']['pearson'])}, rate {f(a['rate']['pearson'])}")
print("\nmean tokens:", {s: r["per_seed"][s]["mean_tokens"] for s in seeds})
print("audit check:", r["audit"])
