"""Settings: embedded defaults, the seed's variables, the generated JWT secret."""

from __future__ import annotations

import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from parley.config import Settings


def test_defaults_are_embedded(tmp_path: Path) -> None:
    settings = Settings(PARLEY_DATA_DIR=tmp_path)  # type: ignore[call-arg]
    assert settings.sqlalchemy_url == f"sqlite+aiosqlite:///{(tmp_path / 'parley.db').resolve()}"
    assert settings.redis_dsn is None and settings.s3_endpoint is None
    assert (settings.port, settings.gateway_port) == (5000, 8080)


def test_seed_database_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "DB_HOST": "db.internal",
        "DB_PORT": "6543",
        "DB_USER": "chat",
        "DB_PASSWORD": "p@ss:word",
        "DB_NAME": "messaging",
    }.items():
        monkeypatch.setenv(key, value)
    url = Settings().sqlalchemy_url
    assert url == "postgresql+asyncpg://chat:p%40ss%3Aword@db.internal:6543/messaging"
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/d")
    assert Settings().sqlalchemy_url == "postgresql+asyncpg://u@h/d"


def test_redis_and_lists_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "cache")
    monkeypatch.setenv("PARLEY_UPSTREAMS", "http://a:5000, http://b:5000")
    monkeypatch.setenv("PARLEY_TRUSTED_PROXIES", "10.0.0.1")
    settings = Settings()
    assert settings.redis_dsn == "redis://cache:6379/0"
    assert settings.upstream_urls == ["http://a:5000", "http://b:5000"]
    assert settings.trusted_proxies == ["10.0.0.1"]


def test_jwt_secret_generated_once_private_and_shared(tmp_path: Path) -> None:
    settings = Settings(PARLEY_DATA_DIR=tmp_path)  # type: ignore[call-arg]
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: settings.jwt_key(), range(16)))
    assert len(keys) == 1
    key = keys.pop()
    assert len(key) >= 48
    assert stat.S_IMODE((tmp_path / "jwt_secret").stat().st_mode) == 0o600
    assert Settings(PARLEY_DATA_DIR=tmp_path).jwt_key() == key  # type: ignore[call-arg]
    assert (
        Settings(PARLEY_DATA_DIR=tmp_path, JWT_SECRET="0123456789abcdef" * 3).jwt_key()
        == "0123456789abcdef" * 3
    )  # type: ignore[call-arg]


def test_invalid_configuration_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "parley.cli", "migrate", "--data-dir", str(tmp_path)],
        env={"PATH": "/usr/bin:/bin", "PORT": "not-a-port"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "PORT" in result.stderr and "Invalid configuration" in result.stderr


def test_the_broker_keepalive_keeps_a_dead_subscription_noticed_within_10_s() -> None:
    """Noticed within two intervals: past 5 s the promise of 10 s would not hold."""
    assert Settings().broker_keepalive == 5  # type: ignore[call-arg]
    assert Settings(PARLEY_BROKER_KEEPALIVE=0.3).broker_keepalive == 0.3  # type: ignore[call-arg]
    for wrong in (0, 6):
        with pytest.raises(ValueError, match="PARLEY_BROKER_KEEPALIVE"):
            Settings(PARLEY_BROKER_KEEPALIVE=wrong)  # type: ignore[call-arg]
