"""One table: each row is a measure of ours next to its peer's, with the ratio and the goal."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Row:
    case: str
    measure: str
    ours: Sequence[float]  # one value per run
    peer: str = ""
    theirs: Sequence[float] = ()  # the peer's value in the same runs
    unit: str = ""
    goal: str = ""  # e.g. ">= 1.5x", "<= 0.2"
    higher_is_better: bool = True
    note: str = ""

    @property
    def value(self) -> float:
        return statistics.median(self.ours) if self.ours else float("nan")

    @property
    def peer_value(self) -> float | None:
        return statistics.median(self.theirs) if self.theirs else None

    @property
    def ratio(self) -> float | None:
        """Median of the per-run ratios (each measured in the same run), ours / theirs."""
        pairs = [o / t for o, t in zip(self.ours, self.theirs, strict=False) if t]
        return statistics.median(pairs) if pairs else None

    def met(self) -> str:
        if not self.goal:
            return ""
        op, _, target = self.goal.partition(" ")
        value = self.ratio if target.endswith("x") else self.value
        if value is None:
            return "?"
        limit = float(target.rstrip("x"))
        ok = value >= limit if op == ">=" else value <= limit if op == "<=" else value < limit
        return "yes" if ok else "NO"


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"


def render(rows: Sequence[Row], header: Sequence[str] = ()) -> str:
    cols = ["case", "measure", "mailrelay", "peer", "peer value", "ratio", "goal", "met", "runs"]
    body = []
    for r in rows:
        ratio = r.ratio
        body.append([
            r.case, r.measure, f"{_num(r.value)} {r.unit}".strip(), r.peer,
            f"{_num(r.peer_value)} {r.unit}".strip() if r.peer_value is not None else "",
            f"{ratio:.2f}x" if ratio is not None else "", r.goal, r.met(), str(len(r.ours)),
        ])  # fmt: skip
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
    lines = list(header)
    lines.append(" | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    lines.append("-+-".join("-" * w for w in widths))
    lines.extend(" | ".join(v.ljust(w) for v, w in zip(b, widths, strict=True)) for b in body)
    notes = [f"  {r.case} / {r.measure}: {r.note}" for r in rows if r.note]
    if notes:
        lines.append("")
        lines.append("notes:")
        lines.extend(notes)
    return "\n".join(lines)
