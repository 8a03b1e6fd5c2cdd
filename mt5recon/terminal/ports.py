"""Free loopback ports for bridges, chosen below the machine's ephemeral range.

A port handed out by binding port 0 lies in the ephemeral range, where any outgoing connection
of a busy machine (an HTTP client, a database driver) may take it before the bridge binds it.
"""

from __future__ import annotations

import random
import re
import socket
from contextlib import suppress
from pathlib import Path

LOOPBACK = "127.0.0.1"
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_PORT_LINE = re.compile(r"port = \d+")


def _ephemeral_low() -> int:
    low = 32768  # Linux's default when the range cannot be read
    with suppress(OSError, ValueError, IndexError):
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    return low


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """`count` distinct ports that could be bound on `host` just now, none in the ephemeral range."""
    low = _ephemeral_low()
    port = random.randint(10_000, max(10_001, low - 4 * count - 2_000))
    ports: list[int] = []
    while len(ports) < count:
        if port >= low:
            raise RuntimeError(f"not enough free ports below {low} for {count} bridges")
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                port += 1
                continue
        ports.append(port)
        port += 1
    return ports


def on_free_ports(fleet_text: str) -> str:
    """A fleet file's text with every `port = N` replaced by its own free port."""
    ports = iter(free_ports(len(_PORT_LINE.findall(fleet_text))))
    return _PORT_LINE.sub(lambda _: f"port = {next(ports)}", fleet_text)
