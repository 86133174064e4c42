"""Audit CHAMP preference pairs with SmolLM2 + the locally trained SAE: what does this data teach
beyond correctness?

Pairs: a correct solution (chosen) against an incorrect attempt (rejected) to the same CHAMP problem
(``hf_saerl.demo.champ.champ_preference_pairs``). The SAE is the one ``hf-saerl demo`` trains and caches (it is
trained here if the cache is empty). Writes ``docs/champ_audit.md`` (the report) and prints the top
concepts with simple length/hedging/formatting statistics of the responses that carry them.

    .venv/bin/python recipes/champ_audit.py [--pairs 120] [--out docs/champ_audit.md]
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np

HEDGES = re.compile(r"\b(perhaps|maybe|might|possibly|likely|seems|appears|approximately|I think|assume)\b", re.I)


def style(text: str) -> dict[str, float]:
    """Surface statistics a concept may stand for: length, hedging, LaTeX and list formatting."""
    return {
        "words": len(text.split()),
        "hedges_per_100w": 100 * len(HEDGES.findall(text)) / max(1, len(text.split())),
        "latex": float("\\" in text or "$" in text),
        "numbered_steps": float(bool(re.search(r"^\s*(\d+\.|Step \d)", text, re.M))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=120, help="pairs to audit (a seeded sample)")
    parser.add_argument("--max-length", type=int, default=384, help="tokens per prompt + response")
    parser.add_argument("--out", type=Path, default=Path("docs/champ_audit.md"))
    args = parser.parse_args()

    from hf_saerl import SAEEncoder
    from hf_saerl.audit import PreferenceAudit
    from hf_saerl.demo.champ import champ_preference_pairs
    from hf_saerl.demo.presets import champ_sae_texts
    from hf_saerl.encoding.sae_training import train_sae
    from hf_saerl.models.embedded import load_smollm2

    start = time.perf_counter()
    model, tok = load_smollm2()
    sae, stats = train_sae(model, tok, champ_sae_texts(0), seed=0)  # the demo's SAE: a cache hit after the demo
    pairs = champ_preference_pairs(seed=0).shuffle(seed=0)
    pairs = pairs.select(range(min(args.pairs, len(pairs))))
    encoder = SAEEncoder(model, sae, tokenizer=tok, max_length=args.max_length)
    audit = PreferenceAudit(encoder, region_column="category").fit(pairs)
    report = audit.report(top=10, n_examples=2)
    table = audit.flagged()

    lines = [
        "# What CHAMP preference pairs teach SmolLM2 (beyond correctness)",
        "",
        f"{len(pairs)} pairs (correct solution chosen over an incorrect attempt, same problem), read at "
        f"`{encoder.hook_name}` through the locally trained SAE (d_sae {encoder.d_sae}, explained variance "
        f"{stats.get('explained_variance', float('nan')):.2f}). Regions are CHAMP's categories. "
        f"Made by `recipes/champ_audit.py` in {time.perf_counter() - start:.0f} s.",
        "",
        "## Surface statistics of the flagged concepts",
        "",
        "Over the pairs where the concept's disparity is non-zero: chosen side vs. rejected side. "
        "*numbered* = share of responses written as numbered steps (CHAMP's reference solutions are); "
        "*reference* = share of those pairs whose chosen text is the reference solution, not a model attempt.",
        "",
        "| concept | leaning | region | Δ | z | pairs | words (c / r) | hedges/100w (c / r) | numbered (c / r) "
        "| LaTeX (c / r) | reference |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    chosen, rejected = list(pairs["chosen"]), list(pairs["rejected"])
    is_reference = np.asarray([src == "reference" for src in pairs["chosen_source"]])
    for _, row in table.head(12).iterrows():
        d = audit.disparity([int(row["concept"])]).ravel()
        idx = np.flatnonzero(d != 0)
        if not len(idx):
            continue
        c = [style(chosen[i]) for i in idx]
        r = [style(rejected[i]) for i in idx]
        mean = lambda rows, key: float(np.mean([x[key] for x in rows]))  # noqa: E731
        lines.append(
            f"| {int(row['concept'])} | {row['leaning']} | {row['region_name']} | {row['delta']:+.2f} | "
            f"{row['welch_z']:+.1f} | {len(idx)} | {mean(c, 'words'):.0f} / {mean(r, 'words'):.0f} | "
            f"{mean(c, 'hedges_per_100w'):.2f} / {mean(r, 'hedges_per_100w'):.2f} | "
            f"{mean(c, 'numbered_steps'):.2f} / {mean(r, 'numbered_steps'):.2f} | "
            f"{mean(c, 'latex'):.2f} / {mean(r, 'latex'):.2f} | {is_reference[idx].mean():.2f} |"
        )
    lines += [
        "",
        f"All {len(pairs)} pairs: chosen is the reference solution in {is_reference.mean():.0%}; numbered "
        f"steps {np.mean([style(t)['numbered_steps'] for t in chosen]):.2f} (chosen) vs. "
        f"{np.mean([style(t)['numbered_steps'] for t in rejected]):.2f} (rejected).",
    ]
    lines += ["", report.to_markdown()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:40]))
    print(f"\nWrote {args.out}")


if __name__ == "__main__":
    main()
