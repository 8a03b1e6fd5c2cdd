"""The simulated fleet's bridge ports: picked clear of the ephemeral range, and never shared with
another program. `record` used to take one busy port for "the fleet is already served" and
recorded a fleet of failed accounts with exit 0."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_fleet_files import demo_fleet_on_free_ports
from typer.testing import CliRunner

from mt5recon.cli import app
from mt5recon.fleet import load_fleet
from mt5recon.terminal.ports import free_ports
from mt5recon.terminal.recording import Replay
from mt5recon.terminal.sim_host import hosted_fleet, use_in_process_fleet
from mt5recon.terminal.simulator.fleet import SimFleet

runner = CliRunner()


def _ports(fleet_file: Path) -> list[int]:
    return [int(p) for p in re.findall(r"port = (\d+)", fleet_file.read_text())]


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def quiet_sim() -> Iterator[SimFleet]:
    sim = SimFleet.quiet(seed=3)
    use_in_process_fleet(sim)
    yield sim
    use_in_process_fleet(None)


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = free_ports(50)
    assert len(set(ports)) == 50
    assert all(p < low for p in ports), ports
    assert all(_bindable(p) for p in ports)


@pytest.mark.parametrize("listening", [True, False], ids=["another server listens", "bound, not listening"])
def test_record_refuses_a_fleet_with_one_port_held_by_another_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet_sim: SimFleet, listening: bool
) -> None:
    monkeypatch.setenv("MT5RECON_HOME", str(tmp_path / "home"))
    fleet = demo_fleet_on_free_ports(tmp_path / "fleet.toml")
    busy, *others = _ports(fleet)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", busy))
        if listening:
            holder.listen()
        result = runner.invoke(app, ["record", str(tmp_path / "rec"), "--cycles", "1", "--fleet", str(fleet)])
    assert result.exit_code == 2, result.output
    assert f"127.0.0.1:{busy} is already in use by another program" in result.stderr
    assert not (tmp_path / "rec").exists() or not any((tmp_path / "rec").iterdir()), "nothing recorded"
    assert all(_bindable(p) for p in others), "the bridges already started were stopped"


def test_record_uses_a_fleet_already_served_on_every_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet_sim: SimFleet
) -> None:
    """`up` or `sim serve` hosts the fleet: `record` says so and records what the bridges serve."""
    monkeypatch.setenv("MT5RECON_HOME", str(tmp_path / "home"))
    fleet_file = demo_fleet_on_free_ports(tmp_path / "fleet.toml")
    with hosted_fleet(load_fleet(fleet_file), tmp_path / "serving-home"):
        result = runner.invoke(
            app, ["record", str(tmp_path / "rec"), "--cycles", "1", "--every-secs", "0", "--fleet", str(fleet_file)]
        )
    assert result.exit_code == 0, result.output
    assert "already served" in result.stderr
    recording = Replay(tmp_path / "rec")
    (at,) = recording.cycles()
    snapshot = recording.snapshot(at)
    assert snapshot.errors == {}
    served = {login: len(quiet_sim.terminal(login).positions_get() or ()) for login in quiet_sim.logins}
    recorded = dict(snapshot.positions.group_by("login").len().iter_rows())
    assert recorded == {login: n for login, n in served.items() if n}
