"""Host a simulated fleet the way real terminals are reached: each account behind its own
bridge port (a session kept logged in between cycles, as a terminal host keeps it), and the
simulated bot writing its expected trades into its own SQLite database.

Whoever runs the pipeline on a simulated fleet (`up`, `cycle`, `record`, `sim serve`) hosts it;
the pipeline itself only ever talks to bridges, exactly as with real terminals.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt5recon.fleet import FleetConfig, SimulatorConfig
from mt5recon.terminal.api import MT5Api
from mt5recon.terminal.session import SessionTerminal
from mt5recon.terminal.simulator.clock import WallClock
from mt5recon.terminal.simulator.fleet import SimFleet

BOT_WRITE_EVERY_SECS = 1.0
_lock = threading.Lock()
_in_process: list[SimFleet] = []  # at most one: the process's simulated fleet


def in_process_fleet(config: SimulatorConfig | None = None) -> SimFleet:
    """The process's simulated fleet (connector kind `sim`, and what the bridges host); built once."""
    with _lock:
        if not _in_process:
            config = config or SimulatorConfig(enabled=True)
            _in_process.append(SimFleet.demo(seed=config.seed, clock=WallClock(), accounts=config.accounts))
        return _in_process[0]


def use_in_process_fleet(fleet: SimFleet | None) -> None:
    """Install a specific fleet (e.g. one on a SimClock) as the process's simulated fleet; None clears it.
    Sessions opened on the previous fleet are closed: they belong to its world."""
    from mt5recon.terminal.factory import sessions

    sessions().close_all()
    with _lock:
        _in_process.clear()
        if fleet is not None:
            _in_process.append(fleet)


class BridgePortBusy(RuntimeError):
    """A bridge port of the simulated fleet is held by another program: hosting elsewhere or
    talking to whatever holds it would mix worlds, so nothing is hosted."""

    def __init__(self, login: int, host: str, port: int) -> None:
        super().__init__(
            f"account {login}: bridge port {host}:{port} is already in use by another program; "
            "free it or give the account another port in the fleet file"
        )
        self.login, self.host, self.port = login, host, port


def _bridge_endpoints(fleet: FleetConfig) -> list[tuple[int, str, int]]:
    return [(a.login, a.connector.host, a.connector.port) for a in fleet.accounts if a.connector.kind == "bridge"]


def _listening(host: str, port: int, timeout_secs: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_secs):
            return True
    except OSError:
        return False


def served_elsewhere(fleet: FleetConfig) -> bool:
    """Every bridge port of the simulated fleet already accepts connections (`up` or `sim serve`
    hosts it). One port taken while others are free is not that: it is a clash."""
    endpoints = _bridge_endpoints(fleet)
    return fleet.simulator.enabled and bool(endpoints) and all(_listening(h, p) for _, h, p in endpoints)


@dataclass
class SimHost:
    sim: SimFleet | None = None
    servers: list[Any] = field(default_factory=list)
    sessions: list[SessionTerminal] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return ", ".join(self.endpoints) or "nothing (the fleet is not simulated)"


def _sim_terminal(sim: SimFleet, login: int) -> Callable[[], MT5Api]:
    """A fresh simulated terminal, logged out until the session initializes it (as a real one)."""
    return lambda: sim.terminal(login, connect=False)


def _bot_writer(sim: SimFleet, target: Path, stop: threading.Event) -> None:
    """The simulated bot keeps its own database current, like a real bot does."""
    while not stop.is_set():
        sim.sync()
        sim.write_expected_trades_sqlite(target)
        stop.wait(BOT_WRITE_EVERY_SECS)


@contextmanager
def hosted_fleet(fleet: FleetConfig, home: Path) -> Iterator[SimHost]:
    """Start the simulated fleet's bridges and bot writer when the fleet is simulated; stop them on exit."""
    if not fleet.simulator.enabled:
        yield SimHost()
        return
    from mt5recon.terminal.bridge import serve_bridge

    sim = in_process_fleet(fleet.simulator)
    host = SimHost(sim=sim)
    stop = threading.Event()
    writer: threading.Thread | None = None
    try:
        for login, address, port in _bridge_endpoints(fleet):
            session = SessionTerminal(_sim_terminal(sim, login), policy=fleet.reconnect, clock=sim.now_s)
            host.sessions.append(session)
            try:
                server = serve_bridge(session, address, port)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise BridgePortBusy(login, address, port) from error
                raise
            host.servers.append(server)
            host.endpoints.append(f"{login}@{address}:{port}")
        if fleet.expected_trades.kind == "sqlite" and fleet.expected_trades.path:
            target = Path(fleet.expected_trades.path)
            target = target if target.is_absolute() else home / target
            target.parent.mkdir(parents=True, exist_ok=True)
            sim.sync()
            sim.write_expected_trades_sqlite(target)  # the first cycle already sees the bot's trades
            writer = threading.Thread(target=_bot_writer, args=(sim, target, stop), name="sim-bot-writer", daemon=True)
            writer.start()
        yield host
    finally:
        stop.set()
        if writer is not None:
            writer.join(timeout=5)
        for server in host.servers:
            server.close()
        for session in host.sessions:
            session.close()
