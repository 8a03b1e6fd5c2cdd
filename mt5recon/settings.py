"""Runtime settings: one class, one env prefix (MT5RECON_), read when asked, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mt5recon.store.lake import StoreConfig


class Settings(BaseSettings):
    """Where things live and how the local stack runs; the fleet itself is in the fleet file."""

    model_config = SettingsConfigDict(env_prefix="MT5RECON_", extra="ignore")

    home: Path = Field(default=Path(".mt5recon"), description="data folder: store, Prefect server, bot db")
    fleet: Path | None = Field(default=None, description="fleet config (TOML); None = the embedded demo fleet")
    store_catalog: str | None = Field(
        default=None, description="DuckLake catalog: a SQLite file path or 'postgres:...' (default under home)"
    )
    store_data_path: str | None = Field(default=None, description="DuckLake data path (default under home)")
    store_metadata_schema: str | None = Field(
        default=None, description="Postgres catalog: the schema holding the lake's metadata (default: DuckLake's)"
    )
    prefect_host: str = "127.0.0.1"
    prefect_port: int = 4200
    interval_secs: float = Field(default=10.0, gt=0)
    housekeeping_interval_secs: float = Field(default=3600.0, gt=0, description="store housekeeping cadence")
    prefetch_secs: float = Field(
        default=15.0, ge=0, description="start a run's process this early (hides Python's start-up, 3-12 s)"
    )
    max_start_delay_secs: float = Field(
        default=5.0,
        gt=0,
        description="a scheduled run not started this long after its time is cancelled, never run late",
    )
    fetch_concurrency: int = Field(
        default=64, ge=1, description="terminals fetched at once (threads; each waits on I/O)"
    )

    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    def store_config(self) -> StoreConfig:
        options = {"metadata_schema": self.store_metadata_schema} if self.store_metadata_schema else {}
        return StoreConfig.under(
            self.resolved_home(), catalog=self.store_catalog, data_path=self.store_data_path, **options
        )
