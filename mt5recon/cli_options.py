"""Options every `mt5recon` command spells the same way, and the settings they select."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mt5recon.settings import Settings

FleetOption = Annotated[
    Path | None, typer.Option("--fleet", help="fleet TOML (default: $MT5RECON_FLEET or the demo fleet)")
]
HomeOption = Annotated[Path | None, typer.Option("--home", help="data folder (default: $MT5RECON_HOME or ./.mt5recon)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts (stable keys, no colour)")]


def settings_for(fleet: Path | None = None, home: Path | None = None) -> Settings:
    """The settings, with the command line's fleet and home over the environment's."""
    overrides: dict[str, object] = {}
    if fleet is not None:
        overrides["fleet"] = fleet
    if home is not None:
        overrides["home"] = home
    return Settings(**overrides)  # type: ignore[arg-type]
