"""Both seeds' numbers side by side (summary.json) from the recipe's seed*/results.json next to this file."""

import json
from pathlib import Path

here = Path(__file__).parent
out = {}
for seed in (0, 1):
    r = json.loads((here / f"seed{seed}" / "results.json").read_text())
    row = {}
    for name in ("dpo", "intervention"):
        m = r["validation"][name]["metrics"]
        row[name] = {
            view: {
                k: (round(m[view][k], 4) if isinstance(m[view][k], float) else m[view][k])
                for k in ("n", "r2", "pearson", "pearson_p", "spearman", "slope", "sign_agreement")
            }
            for view in ("all", "flagged", "top", "regions", "regions_flagged")
        }
    row["intervention_effect"] = {
        k: round(v, 4) if isinstance(v, float) else v for k, v in r["intervention_effect"].items()
    }
    row["target_in_its_region"] = r.get("target_in_its_region")
    row["side_effects"] = r["side_effects"]
    row["timing_s"] = r["timing_s"]
    row["training"] = r["training"]
    row["mean_abs_shift_dpo"] = r["intervention_effect"]["control_mean_abs_shift_dpo"]
    out[f"seed{seed}"] = row
(here / "summary.json").write_text(json.dumps(out, indent=1, default=str))
