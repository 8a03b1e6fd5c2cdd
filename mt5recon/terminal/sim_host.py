"""Host a simulated fleet the way real terminals are reached: each account behind its own
bridge port (a session kept logged in between cycles, as a terminal host keeps it), and the
simulated bot writing its expected trades into its own SQLite database.

Whoever runs the pipeline on a simulated fleet (`up`, `cycle`, `record`, `sim serve`) hosts it;
the pipeline itself only ever talks to bridges, exactly as with real terminals.
"""

from __future__ import annotations

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
        for account in fleet.accounts:
            if account.connector.kind == "bridge":
                session = SessionTerminal(_sim_terminal(sim, account.login), policy=fleet.reconnect, clock=sim.now_s)
                server = serve_bridge(session, account.connector.host, account.connector.port)
                host.servers.append(server)
                host.sessions.append(session)
                host.endpoints.append(f"{account.login}@{account.connector.host}:{account.connector.port}")
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
