"""Long work shows progress (a bar on a terminal, lines in a log) and ends saying what was done."""

from __future__ import annotations

import io

import pytest

from mt5recon.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("description", "every_secs", "expected_lines"),
    [
        ("a log gets a line per step when asked to", 0.0, ["days: 1/3: day 1", "days: 2/3: day 2", "days: 3/3: day 3"]),
        ("a log gets the last step at least, however slow the pace", 3600.0, ["days: 3/3: day 3"]),
    ],
)
def test_plain_lines_in_a_log(description: str, every_secs: float, expected_lines: list[str]) -> None:
    stream = io.StringIO()
    with Progress("days", 3, stream=stream, plain_every_secs=every_secs) as progress:
        for day in (1, 2, 3):
            progress.advance(note=f"day {day}")
        progress.done("wrote 3 days")
    lines = stream.getvalue().splitlines()
    assert lines[:-1] == expected_lines, description
    assert lines[-1].startswith("wrote 3 days ("), f"{description}: the final line says what was done"


def test_a_terminal_gets_a_bar_and_the_same_final_line() -> None:
    stream = Terminal()
    with Progress("cycles", 4, stream=stream) as progress:
        for _ in range(4):
            progress.advance(note="ok")
        progress.done("replayed 4 cycles")
    text = stream.getvalue()
    assert "cycles" in text and "4/4" in text, "the bar was drawn"
    assert "replayed 4 cycles (" in text.rstrip().splitlines()[-1], "the last line outlives the bar"
