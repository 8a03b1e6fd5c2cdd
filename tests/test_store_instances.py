"""The process's loaded DuckDB is lent lake by lake: reused in turn, never two attachments under one alias."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_catalogs import CATALOGS, catalog_config

from mt5recon.store import instances
from mt5recon.store.lake import Store, StoreConfig, open_reader
from mt5recon.store.samples import sample_cycle


@pytest.fixture(params=CATALOGS)
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreConfig]:
    # an extension folder of its own: no other test's open store holds this loaded database
    with catalog_config(request.param, tmp_path / "home", tmp_path / "extensions") as fresh:
        yield fresh


def _loaded(config: StoreConfig) -> instances._Loaded:
    return instances._loaded_for(Path(config.extension_dir), config.needed_extensions)


def _cycles_seen_by_a_reader(config: StoreConfig) -> int:
    reader = open_reader(config)
    try:
        (count,) = reader.execute("SELECT count(DISTINCT cycle_id) FROM cycles").fetchall()[0]
        return int(count)
    finally:
        reader.close()


def test_reader_and_writer_in_turn_share_one_loaded_database(config: StoreConfig) -> None:
    with Store.open(config) as store:
        store.commit_cycle("c1", sample_cycle("c1"), {})
    loaded = _loaded(config)
    assert loaded.lent == set(), "the writer's alias is detached when it closes"
    for _ in range(3):
        assert _cycles_seen_by_a_reader(config) == 1
        assert loaded.lent == set(), "a closed and dropped reader gives its alias back"
    with Store.open(config) as store:
        assert store.connection.execute("SELECT count(DISTINCT cycle_id) FROM cycles").fetchall() == [(1,)]
        assert loaded.lent == {config.alias}
    assert _loaded(config) is loaded, "the same database served every turn"


def test_a_reader_open_during_a_commit_gets_a_database_of_its_own(config: StoreConfig) -> None:
    with Store.open(config) as store:
        reader = open_reader(config)  # the alias is lent to the writer: a fresh database serves
        store.commit_cycle("c1", sample_cycle("c1"), {})
        assert reader.execute("SELECT count(DISTINCT cycle_id) FROM cycles").fetchall() == [(1,)], "sees the commit"
        reader.close()
        with pytest.raises(Exception, match=r"read-only|read only"):
            open_reader(config).execute("DELETE FROM cycles")
        store.commit_cycle("c2", sample_cycle("c2"), {})
        assert store.connection.execute("SELECT count(DISTINCT cycle_id) FROM cycles").fetchall() == [(2,)]
