"""The embedded demo fleet on free ports, so tests never collide with a running `mt5recon up`."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from mt5recon.fleet import demo_fleet_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_fleet_on_free_ports(path: Path) -> Path:
    text = re.sub(r"port = \d+", lambda _: f"port = {free_port()}", demo_fleet_path().read_text())
    path.write_text(text)
    return path
