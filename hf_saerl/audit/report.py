"""The audit report: chosen- and rejected-leaning concepts, their statistics and top-activating snippets.

A table (``to_pandas()`` / ``to_dataset()``) and a Markdown page (``to_markdown()``). An optional
``labeler(latents=[...], snippets=[...]) -> str`` (e.g. an LLM call) names each concept; the name is
display only, and never feeds the statistics.

Example:
    >>> import numpy as np, scipy.sparse as sp
    >>> from hf_saerl.audit import PreferenceAudit
    >>> rng = np.random.default_rng(0)
    >>> c = (rng.random((60, 8)) < 0.3) * 1.0; c[:, 0] = 1.0
    >>> r = (rng.random((60, 8)) < 0.3) * 1.0; r[:, 0] = 0.0
    >>> c, r = sp.csr_matrix(c), sp.csr_matrix(r)
    >>> audit = PreferenceAudit(n_regions=1).fit_features(c, c, r, r)
    >>> rep = audit.report(top=2)
    >>> rep.to_pandas().iloc[0][["leaning", "latents"]].tolist()
    ['chosen', [0]]
    >>> rep.to_markdown().splitlines()[0]
    '# Preference-data audit'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["AuditReport"]

_COLUMNS = [
    "leaning",
    "rank",
    "concept",
    "name",
    "region",
    "region_name",
    "latents",
    "n_latents",
    "delta",
    "welch_z",
    "cohens_d",
    "delta_even",
    "delta_odd",
    "consistent",
    "flagged",
    "rank_score",
    "n_in",
    "examples",
    "example_sides",
]


def _snippet(text: Any, n: int) -> str:
    if isinstance(text, (list, tuple)):
        text = " ".join(str(m.get("content", "")) for m in text if isinstance(m, dict))
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class AuditReport:
    """Report rows (one per reported concept and region) plus a summary of the audit."""

    table: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_audit(
        cls,
        audit: Any,
        *,
        top: int = 10,
        n_examples: int = 3,
        labeler: Callable[..., str] | None = None,
        snippet_chars: int = 160,
        region: int | None = None,
        flagged_only: bool = False,
    ) -> AuditReport:
        stats = audit.statistics_
        if region is not None:
            stats = stats[stats["region"] == region]
        if flagged_only:
            stats = stats[stats["flagged"]]
        parts = []
        for leaning in ("chosen", "rejected"):
            part = stats[(stats["leaning"] == leaning) & (stats["rank_score"] > 0)].head(top).copy()
            part["rank"] = np.arange(1, len(part) + 1)
            parts.append(part)
        table = pd.concat(parts, ignore_index=True)
        concepts = sorted(set(table["concept"].tolist()))
        examples: dict[int, tuple[list[str], list[str]]] = {}
        if concepts and audit.texts_ is not None and n_examples > 0:
            M = audit.concepts_.membership_[:, concepts]
            sizes = np.asarray(M.sum(axis=0)).ravel()
            strength = {
                side: np.asarray((X @ M).todense()) / sizes
                for side, X in (("chosen", audit.chosen_max_), ("rejected", audit.rejected_max_))
            }
            both = np.vstack([strength["chosen"], strength["rejected"]])
            n = audit.n_pairs_
            for j, k in enumerate(concepts):
                ranked = np.argsort(-both[:, j], kind="stable")[:n_examples]
                order = [int(i) for i in ranked if both[i, j] > 0]
                sides = ["chosen" if i < n else "rejected" for i in order]
                texts = [audit.texts_[0][i] if i < n else audit.texts_[1][i - n] for i in order]
                examples[k] = (
                    [_snippet(t, snippet_chars) for t in texts],
                    [f"{s} #{i % n}" for s, i in zip(sides, order, strict=True)],
                )
        table["examples"] = [examples.get(k, ([], []))[0] for k in table["concept"]]
        table["example_sides"] = [examples.get(k, ([], []))[1] for k in table["concept"]]
        names = {}
        if labeler is not None:
            for k in concepts:
                names[k] = str(
                    labeler(latents=audit.concepts_.concepts_[k].tolist(), snippets=examples.get(k, ([], []))[0])
                )
        table["name"] = [names.get(k, f"concept {k}") for k in table["concept"]]
        summary = {
            "n_pairs": int(audit.n_pairs_),
            "d_sae": int(audit.d_sae_),
            "n_concepts": int(audit.concepts_.n_concepts_),
            "n_regions": len(audit.region_names_),
            "region_sizes": np.bincount(audit.regions_).tolist(),
            "n_flagged": int(audit.statistics_["flagged"].sum()),
            "z_threshold": audit.z_threshold,
            "half_z_threshold": audit.half_z_threshold,
            "n_truncated": int(audit.n_truncated_),
        }
        return cls(table[[c for c in _COLUMNS if c in table.columns]].reset_index(drop=True), summary)

    def to_pandas(self) -> pd.DataFrame:
        """The report table as a ``pandas.DataFrame`` (a copy)."""
        return self.table.copy()

    def to_dataset(self) -> Any:
        """The report table as a ``datasets.Dataset``."""
        from datasets import Dataset

        return Dataset.from_pandas(self.table, preserve_index=False)

    def to_markdown(self, max_rows: int | None = None) -> str:
        """A readable Markdown page: summary, then chosen- and rejected-leaning concepts with snippets."""
        s = self.summary
        lines = [
            "# Preference-data audit",
            "",
            f"{s.get('n_pairs')} pairs, SAE width {s.get('d_sae')}, {s.get('n_concepts')} concepts, "
            f"{s.get('n_regions')} region(s) of sizes {s.get('region_sizes')}; {s.get('n_flagged')} "
            f"(region, concept) cells flagged (|z| ≥ {s.get('z_threshold')}, each split half |z| ≥ "
            f"{s.get('half_z_threshold')}, same sign).",
            "",
            "Δ is the mean per-pair disparity (share of the concept's latents firing on chosen minus on "
            "rejected) in the region minus the rest (region *all*: versus 0). Concepts are ranked by the "
            "smaller split half's |Δ|.",
            "",
        ]
        for leaning, title in (
            ("chosen", "Chosen-leaning concepts (the data teaches *more* of these)"),
            ("rejected", "Rejected-leaning concepts (the data teaches *less* of these)"),
        ):
            part = self.table[self.table["leaning"] == leaning]
            if max_rows is not None:
                part = part.head(max_rows)
            lines += [f"## {title}", ""]
            if part.empty:
                lines += ["_None._", ""]
                continue
            lines += [
                "| # | concept | region | latents | Δ | Welch z | Cohen's d | Δ even / odd | flagged |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for _, row in part.iterrows():
                lat = ", ".join(map(str, row["latents"][:8])) + (" …" if len(row["latents"]) > 8 else "")
                lines.append(
                    f"| {row['rank']} | {_md(row['name'])} | {_md(row['region_name'])} | {lat} | "
                    f"{row['delta']:+.3f} | {row['welch_z']:+.2f} | {row['cohens_d']:+.2f} | "
                    f"{row['delta_even']:+.3f} / {row['delta_odd']:+.3f} | {'yes' if row['flagged'] else 'no'} |"
                )
            lines.append("")
            for _, row in part.iterrows():
                if row["examples"]:
                    lines.append(f"**{_md(row['name'])}** ({row['region_name']}), top-activating responses:")
                    lines += [
                        f"- _{side}_: {_md(text)}"
                        for text, side in zip(row["examples"], row["example_sides"], strict=True)
                    ]
                    lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def save(self, path: str) -> None:
        """Write :meth:`to_markdown` to ``path``."""
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(self.to_markdown())

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
