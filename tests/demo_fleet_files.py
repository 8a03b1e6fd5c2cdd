"""The embedded demo fleet on free ports, so tests never collide with a running `mt5recon up`."""

from __future__ import annotations

from pathlib import Path

from mt5recon.fleet import demo_fleet_path
from mt5recon.terminal.ports import free_ports, on_free_ports


def free_port() -> int:
    return free_ports(1)[0]


def demo_fleet_on_free_ports(path: Path) -> Path:
    path.write_text(on_free_ports(demo_fleet_path().read_text()))
    return path
