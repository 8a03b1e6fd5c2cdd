"""Passwords are references resolved at connect time: an environment variable or a Prefect
Secret block, never a value in the fleet file."""

from __future__ import annotations

import pydantic
import pytest

from mt5recon.fleet import AccountConfig, ConnectorConfig, resolve_reference


def test_a_prefect_secret_block_is_read_at_connect_time(prefect_api: None) -> None:
    from prefect.blocks.system import Secret

    Secret(value="from-the-block").save("mt5-password-test", overwrite=True)
    assert resolve_reference("secret:mt5-password-test") == "from-the-block"


def test_an_environment_variable_is_read_and_a_missing_one_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MT5_PASSWORD_TEST", "from-the-env")
    assert resolve_reference("env:MT5_PASSWORD_TEST") == "from-the-env"
    monkeypatch.delenv("MT5_PASSWORD_TEST")
    with pytest.raises(LookupError, match="MT5_PASSWORD_TEST"):
        resolve_reference("env:MT5_PASSWORD_TEST")


def test_a_password_written_into_the_fleet_file_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="reference"):
        AccountConfig(login=1, server="S", password="hunter2", connector=ConnectorConfig(kind="sim"))
