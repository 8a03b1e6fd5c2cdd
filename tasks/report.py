"""What the Prefect UI shows per run: a markdown summary and a table of this cycle's divergences."""

from __future__ import annotations

from typing import Any

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

MAX_ROWS = 50


def summary_markdown(summary: dict[str, Any]) -> str:
    kinds = ", ".join(f"{k}: {n}" for k, n in summary["divergences_by_kind"].items()) or "none"
    return (
        f"### Cycle `{summary['cycle_id']}`\n\n"
        f"| accounts | ok | failed | positions | matched | divergences | quarantined |\n"
        f"|---|---|---|---|---|---|---|\n"
        f"| {summary['accounts']} | {summary['accounts_ok']} | {summary['accounts_failed']} | {summary['positions']} "
        f"| {summary['matched']} | {summary['divergences']} | {summary['quarantined']} |\n\n"
        f"Divergences by kind: {kinds}\n"
    )


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_cycle_report(summary: dict[str, Any], divergences: pl.DataFrame) -> None:
    create_markdown_artifact(summary_markdown(summary), key="cycle-summary", description="reconciliation cycle")
    worst = divergences.sort(pl.col("size_pips").abs(), descending=True, nulls_last=True).head(MAX_ROWS)
    rows = worst.select("login", "kind", "symbol", "trade_id", "ticket", "size_pips", "size_money", "cause")
    create_table_artifact(
        rows.to_dicts(), key="cycle-divergences", description=f"top {MAX_ROWS} divergences this cycle"
    )
