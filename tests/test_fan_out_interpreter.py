"""The fan-out's interpreter settings: on while any block is inside, restored by the last one out."""

from __future__ import annotations

import gc
import sys
import threading

from mt5recon.fan_out_interpreter import FAN_OUT_SWITCH_INTERVAL_SECS, fanning_out


def test_blocks_nest_across_threads_and_the_last_one_out_restores_both_settings() -> None:
    before = sys.getswitchinterval()
    assert gc.isenabled()
    assert before != FAN_OUT_SWITCH_INTERVAL_SECS
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with fanning_out():
            entered.set()
            leave.wait()

    thread = threading.Thread(target=other)
    with fanning_out():
        thread.start()
        entered.wait()
        with fanning_out():
            assert not gc.isenabled()
            assert sys.getswitchinterval() == FAN_OUT_SWITCH_INTERVAL_SECS
        assert not gc.isenabled(), "still inside the outer block"
    assert not gc.isenabled(), "the other thread is still inside its block"
    assert sys.getswitchinterval() == FAN_OUT_SWITCH_INTERVAL_SECS
    leave.set()
    thread.join()
    assert gc.isenabled()
    assert sys.getswitchinterval() == before


def test_a_collector_already_off_stays_off_after_the_block() -> None:
    gc.disable()
    try:
        with fanning_out():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_error_inside_the_block_still_restores_the_settings() -> None:
    before = sys.getswitchinterval()
    try:
        with fanning_out():
            raise RuntimeError("a terminal blew up")
    except RuntimeError:
        pass
    assert gc.isenabled()
    assert sys.getswitchinterval() == before
