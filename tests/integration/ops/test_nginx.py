"""deploy/nginx: `nginx -t`, then a real nginx on loopback in front of a real gateway.

The deploy files are used as they are; only what differs on a test machine is substituted
(the gateways' addresses, the listening port, writable temp/cache paths, the TLS
certificate paths). Callers use their own loopback source addresses (127.0.0.x), so
the per-IP limits and the client IP the gateway sees can be told apart from nginx's.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import free_port
from tests.integration.ops.conftest import DEPLOY, ROOT, Proc, need_tool, start_serve
from tests.waiting import eventually_sync, let_time_pass_sync

NGINX_DIR = DEPLOY / "nginx"


@dataclass
class Edge:
    base: str
    tls_base: str | None
    gateway: Proc
    access_log: Path


def render(target: Path, *, gateways: list[str], port: int, tls_port: int | None) -> Path:
    """deploy/nginx copied to `target`, with this machine's addresses and writable paths."""
    conf = target / "conf"
    shutil.copytree(NGINX_DIR, conf)
    (conf / "upstreams.conf").write_text("".join(f"server {g} max_fails=3 fail_timeout=10s;\n"
                                                 for g in gateways))  # fmt: skip
    text = (conf / "nginx.conf").read_text()
    temp = "".join(
        f"    {kind}_temp_path {target / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    for old, new in (
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("listen [::]:80;", ""),
        ("/var/cache/nginx/parley", str(target / "cache")),
        ("access_log /dev/stdout parley;", f"access_log {target / 'access.log'} parley;"),
        ("http {\n", "http {\n" + temp),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    if os.geteuid() == 0:  # as root, workers would run as nobody: no access to pytest's 0700 dirs
        text = "user root;\n" + text
    if tls_port is not None:
        certs = target / "certs"
        certs.mkdir()
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-keyout", str(certs / "privkey.pem"),
             "-out", str(certs / "fullchain.pem")],
            check=True, capture_output=True,
        )  # fmt: skip
        assert "# include tls.conf;" in text
        text = text.replace("# include tls.conf;", "include tls.conf;")
        tls = (conf / "tls.conf").read_text()
        tls = tls.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;")
        tls = tls.replace("listen [::]:443 ssl http2;", "")
        tls = tls.replace("/etc/nginx/certs", str(certs))
        (conf / "tls.conf").write_text(tls)
    (conf / "nginx.conf").write_text(text)
    return conf / "nginx.conf"


def nginx_args(nginx: str, target: Path, config: Path) -> list[str]:
    return [nginx, "-p", str(target), "-c", str(config), "-e", str(target / "error.log"),
            "-g", f"pid {target / 'nginx.pid'}; daemon off;"]  # fmt: skip


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    nginx = need_tool("nginx", "/usr/sbin/nginx")
    need_tool("openssl")
    tmp = tmp_path_factory.mktemp("nginx")
    gateway = start_serve(
        tmp,
        PARLEY_TRUSTED_PROXIES="127.0.0.1/32",  # nginx connects from 127.0.0.1
        PARLEY_RATE_PUBLIC="10000/second",  # so every 429 below is nginx's own
        PARLEY_RATE_USER="10000/second",
        LOG_LEVEL="info",  # the gateway's access log names the client IP it saw
    )
    port, tls_port = free_port(), free_port()
    gw = gateway.urls["gateway"].removeprefix("http://")
    config = render(tmp / "edge", gateways=[gw], port=port, tls_port=tls_port)
    (tmp / "edge" / "cache").mkdir()
    proc = subprocess.Popen(
        nginx_args(nginx, tmp / "edge", config),
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "edge" / "stderr.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if proc.poll() is not None:
                pytest.fail((tmp / "edge" / "error.log").read_text())
            try:
                return httpx.get(base + "/health", timeout=2, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        eventually_sync(up, 20, interval=0.2, what="nginx to come up")
        yield Edge(base, f"https://127.0.0.1:{tls_port}", gateway, tmp / "edge" / "access.log")
    finally:
        proc.terminate()
        proc.wait(10)
        gateway.stop()


def client(source: str, **kwargs: object) -> httpx.Client:
    """An HTTP client whose connections come from the loopback address `source`."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(transport=transport, timeout=10, trust_env=False, **kwargs)  # type: ignore[arg-type]


def test_nginx_t_accepts_the_config(tmp_path: Path) -> None:
    nginx = need_tool("nginx", "/usr/sbin/nginx")
    need_tool("openssl")
    for tls in (None, free_port()):
        target = tmp_path / f"t{tls or 0}"
        config = render(target, gateways=["127.0.0.1:1", "127.0.0.1:2"], port=free_port(),
                        tls_port=tls)  # fmt: skip
        done = subprocess.run(
            [*nginx_args(nginx, target, config)[:-2], "-t"], capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "syntax is ok" in done.stderr and "test is successful" in done.stderr


def test_pages_static_and_headers_through_nginx(edge: Edge) -> None:
    with client("127.0.0.2") as http:
        page = http.get(edge.base + "/login")
        assert page.status_code == 200 and "<html" in page.text.lower()
        for name, value in (
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()"),
        ):
            assert page.headers.get_list(name) == [value], (name, page.headers)
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "server" not in page.headers or "nginx/" not in page.headers["server"]

        js = http.get(edge.base + "/static/js/app.js", headers={"Accept-Encoding": "gzip"})
        assert js.status_code == 200 and js.headers["content-encoding"] == "gzip"
        assert "javascript" in js.headers["content-type"] and len(js.text) > 100
        again = http.get(edge.base + "/static/js/app.js")
        assert again.headers["x-cache-status"] == "HIT"
        assert again.headers.get_list("x-content-type-options") == ["nosniff"]

        # Metrics stay on the internal network.
        assert http.get(edge.base + "/metrics").status_code == 404
        assert http.get(edge.base + "/service/metrics").status_code == 404


def test_api_and_websocket_conversation_through_nginx(edge: Edge) -> None:
    """The whole API walk (deploy/scripts/api_test.py) with nginx in front, WebSocket included."""
    done = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "deploy/scripts/api_test.py", edge.base],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    WS     /ws  hello, ping, typing, send+ack, delivery, sync" in done.stdout


def test_websocket_upgrade_is_relayed_both_ways(edge: Edge) -> None:
    with client("127.0.0.3") as http:
        name = "nx_" + uuid.uuid4().hex[:10]
        reg = http.post(
            edge.base + "/service/api/register",
            json={"username": name, "email": f"{name}@example.org", "password": "pw-" + name},
        )
        assert reg.status_code == 201, reg.text
        token = reg.json()["access_token"]
    ws_url = edge.base.replace("http://", "ws://") + "/ws"
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        let_time_pass_sync(1.5, "idle: the socket must stay open through nginx")
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
    with pytest.raises(Exception, match="401"):
        connect(ws_url, additional_headers={"Authorization": "Bearer nope"}, open_timeout=10)


def test_gateway_sees_the_callers_ip(edge: Edge) -> None:
    probe = uuid.uuid4().hex
    with client("127.0.0.7") as http:
        # nginx logs no query string: its line is found by the User-Agent.
        answer = http.get(edge.base + f"/stats?probe={probe}",
                          headers={"X-Forwarded-For": "198.51.100.66",
                                   "User-Agent": f"ops-probe/{probe}"})  # fmt: skip
        assert answer.status_code == 200
    lines = eventually_sync(
        lambda: [
            json.loads(line)
            for line in edge.gateway.output().splitlines()
            if probe in line and line.startswith("{")
        ],
        what="the gateway's log line",
    )
    # nginx appends the peer to X-Forwarded-For; the gateway trusts nginx (127.0.0.1) and
    # takes the nearest untrusted hop: the caller, not the spoofed value, not nginx.
    assert lines[0]["client_ip"] == "127.0.0.7"
    # nginx writes its access-log line after the response has gone out: wait for it.
    eventually_sync(lambda: probe in edge.access_log.read_text(), what="nginx's access log")
    logged = [line for line in edge.access_log.read_text().splitlines() if probe in line]
    assert logged and logged[0].startswith("127.0.0.7 "), edge.access_log.read_text()[-2000:]


def test_per_ip_request_limit_answers_429(edge: Edge) -> None:
    async def burst(source: str, count: int) -> list[httpx.Response]:
        transport = httpx.AsyncHTTPTransport(local_address=source)
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(transport=transport, limits=limits, timeout=20,
                                     trust_env=False) as http:  # fmt: skip
            return await asyncio.gather(*(http.get(edge.base + "/login") for _ in range(count)))

    answers = asyncio.run(burst("127.0.0.9", 200))
    statuses = [r.status_code for r in answers]
    refused = [r for r in answers if r.status_code in (429, 503)]
    assert refused, statuses
    assert statuses.count(200) >= 60  # the burst allowance passed
    body = refused[0].json()
    assert body == {"detail": "Too many requests, slow down", "code": "rate_limited"}
    assert refused[0].headers["retry-after"] == "1"
    assert refused[0].headers.get_list("x-content-type-options") == ["nosniff"]
    assert "ratelimit-limit" not in refused[0].headers  # nginx's answer, not the gateway's
    # The limit is per IP: another caller is served meanwhile.
    with client("127.0.0.10") as http:
        assert http.get(edge.base + "/login").status_code == 200


def test_tls_server_block_serves_https(edge: Edge) -> None:
    assert edge.tls_base is not None
    with httpx.Client(verify=False, timeout=10, trust_env=False) as http:
        answer = http.get(edge.tls_base + "/health")
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    assert answer.headers["strict-transport-security"].startswith("max-age=31536000")


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "cross-origin-resource-policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"


def _one_per_location(http: httpx.Client, base: str) -> dict[str, httpx.Response]:
    """A request answered by each location of locations.conf (nginx's own answers too)."""
    return {
        "/": http.get(base + "/login"),
        "/static/": http.get(base + "/static/js/app.js"),
        "ws": http.get(base + "/ws"),  # no upgrade: the gateway refuses it
        "auth": http.post(base + "/service/api/login", json={"username": "x", "password": "y"}),
        "= /metrics": http.get(base + "/metrics"),
        "/service/metrics": http.get(base + "/service/metrics"),
    }


def test_every_location_sends_the_security_headers_and_hsts_over_tls(edge: Edge) -> None:
    assert edge.tls_base is not None
    with httpx.Client(verify=False, timeout=10, trust_env=False) as https:
        secure = _one_per_location(https, edge.tls_base)
    with client("127.0.0.11") as http:
        plain = _one_per_location(http, edge.base)
    assert secure["/"].status_code == 200 and secure["/static/"].status_code == 200
    assert secure["= /metrics"].status_code == 404 and secure["auth"].status_code == 401
    for location, answer in [*secure.items(), *plain.items()]:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get_list(name) == [value], (location, name, answer.headers)
    for location, answer in secure.items():
        assert answer.headers.get_list("strict-transport-security") == [HSTS], location
    for location, answer in plain.items():
        assert "strict-transport-security" not in answer.headers, location  # HTTPS only


def test_query_strings_never_reach_the_access_log(edge: Edge) -> None:
    secret = "secret-" + uuid.uuid4().hex
    probe = uuid.uuid4().hex
    with client("127.0.0.12") as http:
        http.get(edge.base + f"/login?token={secret}&probe={probe}")
        http.get(edge.base + f"/ws?token={secret}")
        http.get(edge.base + f"/service/ws?token={secret}")
        http.get(edge.base + f"/static/{probe}.js?token={secret}")

    def logged() -> str:
        text = edge.access_log.read_text()
        return text if f"/static/{probe}.js" in text else ""

    log = eventually_sync(logged, what="nginx to log the request")
    assert f'"GET /static/{probe}.js HTTP/1.1" 404' in log, log[-2000:]
    assert '"GET /login HTTP/1.1" 200' in log and '"GET /ws HTTP/1.1"' in log
    assert secret not in log and probe not in log.replace(f"/static/{probe}.js", "")
    assert "?" not in "".join(line for line in log.splitlines() if "127.0.0.12 " in line)


def test_cookies_are_secure_over_tls(edge: Edge) -> None:
    """The gateway under test runs without PARLEY_COOKIE_SECURE: nginx's TLS server adds it."""
    name = "ck_" + uuid.uuid4().hex[:10]
    account = {"username": name, "email": f"{name}@example.org", "password": "pw-" + name}
    assert edge.tls_base is not None
    with httpx.Client(verify=False, timeout=10, trust_env=False) as https:
        reg = https.post(edge.tls_base + "/service/api/register", json=account)
    assert reg.status_code == 201, reg.text
    cookies = reg.headers.get_list("set-cookie")
    assert cookies and all("; Secure" in c or c.endswith("Secure") for c in cookies), cookies
    with client("127.0.0.13") as http:
        plain = http.post(edge.base + "/service/api/login",
                          json={"username": name, "password": account["password"]})  # fmt: skip
    assert plain.status_code == 200
    assert not any("secure" in c.lower() for c in plain.headers.get_list("set-cookie"))


def test_log_format_names_no_query_string() -> None:
    conf = (NGINX_DIR / "nginx.conf").read_text()
    log_format = conf.split("log_format parley", 1)[1].split(";", 1)[0]
    assert "$uri" in log_format
    for variable in ("$request ", '$request"', "$request_uri", "$args", "$query_string",
                     "$arg_", "$http_referer"):  # fmt: skip
        assert variable not in log_format, variable
