"""What-if replay: how the breaks of a recorded period differ between two sets of tolerances.

Pure: the `breaks` tables of the two replays in, frames out (and their text), no I/O. A break
counts when it opened during the replay (`opened_at` set: open or since resolved); a sighting
that never confirmed (pending, dismissed) is not a break. Breaks are compared by `break_id`
(`login:kind:identity`), which is the same in both replays for the same divergence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from mt5recon.tolerances import BreakPolicy, Tolerances

BREAK_COLUMNS = ("break_id", "login", "symbol", "kind", "cause", "trade_id", "worst_size_pips")
KIND_COUNTS = pl.Schema({"kind": pl.String(), "baseline": pl.Int64(), "what_if": pl.Int64(), "change": pl.Int64()})
ACCOUNT_SYMBOL_COUNTS = pl.Schema(
    {
        "login": pl.Int64(),
        "symbol": pl.String(),
        "kind": pl.String(),
        "would_appear": pl.Int64(),
        "would_disappear": pl.Int64(),
    }
)
_SORT = ["login", "symbol", "kind", "break_id"]


def opened_breaks(breaks: pl.DataFrame) -> pl.DataFrame:
    """The breaks that opened (open now or resolved since), one row each, in a stable order."""
    return (
        breaks.filter(pl.col("opened_at").is_not_null())
        .select(BREAK_COLUMNS)
        .unique("break_id", keep="last")
        .sort(_SORT, nulls_last=True)
    )


@dataclass(frozen=True)
class BreakDiff:
    """Baseline against what-if. `only_baseline` would disappear, `only_what_if` would appear."""

    by_kind: pl.DataFrame  # kind, baseline, what_if, change
    only_baseline: pl.DataFrame  # BREAK_COLUMNS
    only_what_if: pl.DataFrame  # BREAK_COLUMNS
    by_account_symbol: pl.DataFrame  # login, symbol, kind, would_appear, would_disappear
    baseline_total: int
    what_if_total: int

    @property
    def unchanged(self) -> bool:
        return self.only_baseline.is_empty() and self.only_what_if.is_empty()

    def summary(self) -> str:
        if self.unchanged:
            return f"no difference: the same {self.baseline_total} break(s) with either tolerances"
        kinds = ", ".join(
            f"{kind} {change:+d}"
            for kind, change in self.by_kind.filter(pl.col("change") != 0).select("kind", "change").iter_rows()
        )
        return (
            f"baseline {self.baseline_total} break(s), what-if {self.what_if_total}: "
            f"{self.only_what_if.height} would appear, {self.only_baseline.height} would disappear ({kinds})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "baseline_breaks": self.baseline_total,
            "what_if_breaks": self.what_if_total,
            "by_kind": self.by_kind.to_dicts(),
            "would_disappear": self.only_baseline.to_dicts(),
            "would_appear": self.only_what_if.to_dicts(),
            "by_account_symbol": self.by_account_symbol.to_dicts(),
            "summary": self.summary(),
        }


def _kind_counts(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    return frame.group_by("kind").agg(pl.len().cast(pl.Int64).alias(column))


def diff_breaks(baseline: pl.DataFrame, what_if: pl.DataFrame) -> BreakDiff:
    """Compare the `breaks` tables of the baseline and the what-if replays."""
    base, other = opened_breaks(baseline), opened_breaks(what_if)
    only_base = base.join(other.select("break_id"), on="break_id", how="anti").sort(_SORT, nulls_last=True)
    only_other = other.join(base.select("break_id"), on="break_id", how="anti").sort(_SORT, nulls_last=True)
    by_kind = (
        _kind_counts(base, "baseline")
        .join(_kind_counts(other, "what_if"), on="kind", how="full", coalesce=True)
        .with_columns(pl.col("baseline", "what_if").fill_null(0))
        .with_columns((pl.col("what_if") - pl.col("baseline")).alias("change"))
        .select(KIND_COUNTS.names())
        .cast(KIND_COUNTS)
        .sort("kind")
    )
    keys = ["login", "symbol", "kind"]
    by_account_symbol = (
        only_other.group_by(keys)
        .agg(pl.len().cast(pl.Int64).alias("would_appear"))
        .join(
            only_base.group_by(keys).agg(pl.len().cast(pl.Int64).alias("would_disappear")),
            on=keys,
            how="full",
            coalesce=True,
            nulls_equal=True,
        )
        .with_columns(pl.col("would_appear", "would_disappear").fill_null(0))
        .select(ACCOUNT_SYMBOL_COUNTS.names())
        .cast(ACCOUNT_SYMBOL_COUNTS)
        .sort(keys, nulls_last=True)
    )
    return BreakDiff(by_kind, only_base, only_other, by_account_symbol, base.height, other.height)


def tolerance_changes(
    baseline: Tolerances, what_if: Tolerances, baseline_breaks: BreakPolicy, what_if_breaks: BreakPolicy
) -> list[str]:
    """What the what-if file changes, field by field: `default.slippage_pips 5.0 -> 2.0`."""

    def flat(prefix: str, value: object) -> dict[str, object]:
        if isinstance(value, dict):
            out: dict[str, object] = {}
            for key, item in value.items():
                out.update(flat(f"{prefix}.{key}" if prefix else str(key), item))
            return out
        return {prefix: value}

    before = {**flat("tolerances", baseline.model_dump()), **flat("breaks", baseline_breaks.model_dump())}
    after = {**flat("tolerances", what_if.model_dump()), **flat("breaks", what_if_breaks.model_dump())}
    changes = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name, "(unset)"), after.get(name, "(unset)")
        if old != new:
            changes.append(f"{name} {old} -> {new}")
    return changes


def format_table(frame: pl.DataFrame, *, indent: str = "  ") -> str:
    """A plain aligned text table (numbers right-aligned), for terminals and logs."""
    if frame.is_empty():
        return f"{indent}(none)"
    numeric = {name for name, dtype in frame.schema.items() if dtype.is_numeric()}

    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.1f}"
        return str(value)

    rows = [[cell(v) for v in row] for row in frame.iter_rows()]
    widths = [max(len(name), *(len(r[i]) for r in rows)) for i, name in enumerate(frame.columns)]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if name in numeric else v.ljust(w)
            for v, w, name in zip(values, widths, frame.columns, strict=True)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return "\n".join([line(list(frame.columns)), *(line(r) for r in rows)])


def format_text(diff: BreakDiff, changes: list[str]) -> str:
    """The report `mt5recon replay --tolerances` prints."""
    shown = ["break_id", "login", "symbol", "kind", "cause", "worst_size_pips"]
    sections = [
        "what-if tolerances (against the fleet's): " + ("; ".join(changes) if changes else "no change"),
        "breaks by kind:\n" + format_table(diff.by_kind),
        f"would appear with the what-if tolerances ({diff.only_what_if.height}):\n"
        + format_table(diff.only_what_if.select(shown)),
        f"would disappear ({diff.only_baseline.height}):\n" + format_table(diff.only_baseline.select(shown)),
        "by account and symbol:\n" + format_table(diff.by_account_symbol),
    ]
    return "\n".join(sections)
