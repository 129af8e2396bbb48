"""Gateway hardening: upstream flags, body limits, per-IP concurrency, upstream health."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from parley.cli import build_settings, make_parser
from parley.gateway.app import create_app

from .conftest import JWT_SECRET


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "REDIS_"))}
    return {**env, "JWT_SECRET": JWT_SECRET, "LOG_LEVEL": "warning", **extra}


def test_upstream_flag_takes_a_comma_separated_list_and_repeats(tmp_path: Any) -> None:
    argv = ["gateway", "--data-dir", str(tmp_path), "--upstream", "http://a:5001, http://b:5002/",
            "--upstream", "https://c.internal"]  # fmt: skip
    settings = build_settings(make_parser().parse_args(argv))
    expected = ["http://a:5001", "http://b:5002", "https://c.internal"]
    assert settings.upstream_urls == expected
    gateway = create_app(settings.model_copy(update={"jwt_secret": JWT_SECRET}))
    assert [u.url for u in gateway.pool.upstreams] == expected


@pytest.mark.parametrize(
    ("flag", "env", "shown"),
    [
        ("http://a:5001,localhost:5002", None, "'localhost:5002' must look like http://host:port"),
        ("http//a:5001", None, "'http//a:5001' must look like http://host:port"),
        ("http://a:99999", None, "'http://a:99999' is not a valid URL"),
        ("http://a:5001/api", None, "no path or query"),
        (None, "http://a:5001,ftp://b", "'ftp://b' must look like http://host:port"),
        (None, "http://[::1:5001", "is not a valid URL"),
    ],
)
def test_malformed_upstream_stops_the_gateway_at_start_with_code_2(
    tmp_path: Any, flag: str | None, env: str | None, shown: str
) -> None:
    args = [sys.executable, "-m", "parley.cli", "gateway", "--port", "1", "--gateway-port", "2",
            "--data-dir", str(tmp_path)]  # fmt: skip
    if flag is not None:
        args += ["--upstream", flag]
    extra = {"PARLEY_UPSTREAMS": env} if env is not None else {}
    result = subprocess.run(args, env=_env(**extra), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Invalid configuration: PARLEY_UPSTREAMS: upstream ")
    assert shown in result.stderr
    assert "Traceback" not in result.stderr
