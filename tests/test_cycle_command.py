"""`mt5recon cycle`: one cycle on the demo fleet with no Prefect server running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from demo_fleet_files import demo_fleet_on_free_ports

from mt5recon.store.lake import StoreConfig, open_reader


def test_one_cycle_without_a_server(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MT5RECON_HOME": str(tmp_path / "home"),
        "MT5RECON_FLEET": str(demo_fleet_on_free_ports(tmp_path / "fleet.toml")),
    }
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "mt5recon.cli", "cycle"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "accounts=10 accounts_ok=10" in done.stdout, done.stdout[-2000:]
    reader = open_reader(StoreConfig.under(tmp_path / "home"))
    try:
        row = reader.execute("SELECT count(*), count(DISTINCT cycle_id), sum(positions) FROM cycles").fetchone()
    finally:
        reader.close()
    assert row is not None and row[0] == 10 and row[1] == 1
    assert row[2] > 100, "the demo fleet holds a few hundred positions"
