"""Secrets at start, through the real `parley` process: a placeholder or a value that is not
random is refused by every command with exit code 2 and the reason on stderr, never the
value itself."""

from __future__ import annotations

import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

COMMANDS = (["serve"], ["server"], ["gateway"], ["migrate"], ["users", "promote", "ann"])
GOOD = secrets.token_hex(32)


def _parley(command: list[str], data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", *command, "--data-dir", str(data)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_documented_placeholder_is_refused_by_every_command(tmp_path: Path) -> None:
    placeholder = "REPLACE_WITH_A_LONG_RANDOM_SECRET"  # 33 bytes: long enough, not a secret
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda c: _parley(c, tmp_path, JWT_SECRET=placeholder), COMMANDS))
    for command, result in zip(COMMANDS, results, strict=True):
        assert result.returncode == 2, (command, result.stderr)
        assert (
            "Invalid configuration: JWT_SECRET: the value is a placeholder (it contains"
            " 'replace')" in result.stderr
        ), (command, result.stderr)
        assert "openssl rand -hex 32" in result.stderr
        assert placeholder not in result.stderr and placeholder not in result.stdout


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("change-me-to-a-long-random-secret-of-at-least-32-bytes", "contains 'change'"),
        ("An-EXAMPLE-signing-key-0123456789-abcdefgh", "contains 'example'"),
        ("Replace.This.Secret.Before.Production.1234", "contains 'replace'"),
        ("ab" * 20, "only 2 distinct characters (at least 12 are needed)"),
        ("0123456789" * 4, "only 10 distinct characters (at least 12 are needed)"),
        ("s" * 40, "only 1 distinct characters"),
    ],
)
def test_placeholder_and_repetitive_secrets_are_refused(
    tmp_path: Path, secret: str, reason: str
) -> None:
    result = _parley(["server"], tmp_path, JWT_SECRET=secret)
    assert result.returncode == 2, result.stderr
    assert "JWT_SECRET" in result.stderr and reason in result.stderr, result.stderr
    assert secret not in result.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DATABASE_URL", "postgresql://parley:REPLACE_PASSWORD@127.0.0.1:1/parley"),
        ("REDIS_URL", "redis://:change-me@127.0.0.1:1/0"),
        ("S3_SECRET_KEY", "REPLACE_SECRET_KEY"),
        ("DB_PASSWORD", "Change-Me"),
    ],
)
def test_other_placeholder_secrets_are_refused(tmp_path: Path, key: str, value: str) -> None:
    result = _parley(["migrate"], tmp_path, JWT_SECRET=GOOD, **{key: value})
    assert result.returncode == 2, result.stderr
    assert f"Invalid configuration: {key}: " in result.stderr, result.stderr
    assert "is a placeholder" in result.stderr
    assert "REPLACE_PASSWORD" not in result.stderr and "change-me" not in result.stderr


def test_a_random_secret_starts(tmp_path: Path) -> None:
    result = _parley(["migrate"], tmp_path, JWT_SECRET=GOOD)
    assert result.returncode == 0, result.stderr
