"""Compose, Kubernetes, Dockerfile, systemd and Prometheus files: valid, and in agreement
with the code (settings names, default ports, metrics paths, probes, CLI commands).

Docker, Swarm and Kubernetes cannot run here: these files are validated, not run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes.client import ApiClient
from pydantic import ValidationError

from parley.cli import make_parser
from parley.clientip import is_trusted, parse_networks
from parley.config import Settings
from parley.gateway.app import create_app as create_gateway
from parley.server.app import create_app as create_server
from tests.integration.ops.conftest import DEPLOY

sys.path.insert(0, str(DEPLOY / "scripts"))
import new_env

K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
SETTINGS_DEFAULTS = Settings.model_construct()
# Not Parley settings: the runtime's own.
RUNTIME = {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PATH"}


def settings_names() -> set[str]:
    names = set()
    for name, info in Settings.model_fields.items():
        names.add(info.alias or name.upper())
    return names


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def k8s_objects(paths: list[Path] | None = None) -> list[dict[str, Any]]:
    objects = []
    for path in paths or sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def parley_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if "PARLEY_IMAGE" in str(svc.get("image", ""))
    }


# --- validity ---------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    if not Path(tool).exists():
        pytest.fail("check-jsonschema is a dev dependency: make install")
    done = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def test_compose_validator_is_not_a_rubber_stamp(tmp_path: Path) -> None:
    broken = compose()
    broken["services"]["redis"]["healthcheck"]["retries"] = "many"
    broken["services"]["redis"]["restart_policy"] = "always"  # belongs under deploy:
    path = tmp_path / "compose.yml"
    path.write_text(yaml.safe_dump(broken))
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    done = subprocess.run([tool, "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode != 0


def model_name(obj: dict[str, Any]) -> str:
    version = obj["apiVersion"].split("/")[-1]
    return version[0].upper() + version[1:] + obj["kind"]


def load_model(obj: dict[str, Any]) -> Any:
    """The object as the official client's model; keys the model does not know fail."""
    api = ApiClient()
    model = api._ApiClient__deserialize(obj, model_name(obj))  # type: ignore[attr-defined]
    again = api.sanitize_for_serialization(model)
    assert again == obj, f"{obj['kind']} {obj['metadata']['name']}: unknown or mistyped keys"
    return model


def test_every_kubernetes_object_loads_into_the_client_models() -> None:
    objects = k8s_objects()
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert kinds >= {
        ("Namespace", "parley"),
        ("ConfigMap", "parley-config"),
        ("Secret", "parley-secrets"),
        ("Deployment", "parley-server"),
        ("Deployment", "parley-gateway"),
        ("Service", "parley-server"),
        ("Service", "parley-gateway"),
        ("PodDisruptionBudget", "parley-server"),
        ("PodDisruptionBudget", "parley-gateway"),
        ("HorizontalPodAutoscaler", "parley-server"),
        ("HorizontalPodAutoscaler", "parley-gateway"),
        ("Ingress", "parley"),
        ("Job", "parley-migrate"),
        ("NetworkPolicy", "parley-server-ingress"),
    }
    for obj in objects:
        load_model(obj)


def test_model_loading_catches_a_typo() -> None:
    deployment = next(o for o in k8s_objects() if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(AssertionError, match="unknown or mistyped"):
        load_model(deployment)


def test_secret_template_holds_no_real_secret() -> None:
    secret = next(o for o in k8s_objects() if o["kind"] == "Secret")
    for key, value in secret["stringData"].items():
        assert "REPLACE" in value, key
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
    listed = set(kustomization["resources"]) | {"secret.example.yaml"}
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_kustomize_renders_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomization is checked by the other tests")
    done = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rendered = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert len(rendered) == len(k8s_objects()) - 1  # all but the Secret template
    for obj in rendered:
        load_model(obj)
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "parley"
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "parley"


# --- agreement with the code ------------------------------------------------------------


def env_names_in_deploy_files() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, svc in parley_services().items():
        env = svc.get("environment", {})
        found[f"compose:{name}"] = set(env)
    for obj in k8s_objects():
        if obj["kind"] in ("ConfigMap",):
            found[f"k8s:{obj['metadata']['name']}"] = set(obj["data"])
        if obj["kind"] == "Secret":
            found[f"k8s:{obj['metadata']['name']}"] = set(obj["stringData"])
        pod = _pod_spec(obj)
        if pod:
            for c in pod["containers"]:
                found[f"k8s:{obj['metadata']['name']}"] = {e["name"] for e in c.get("env", [])}
    docker = (DEPLOY / "Dockerfile").read_text()
    env_block = docker.split("ENV PATH=", 1)[1].split("USER", 1)[0]
    found["Dockerfile"] = set(re.findall(r"([A-Z_]+)=", "PATH=" + env_block))
    for unit in (DEPLOY / "systemd").glob("*.env*"):
        found[f"systemd:{unit.name}"] = set(
            re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", unit.read_text(), re.M)
        )
    return found


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] in ("Deployment", "Job"):
        spec: dict[str, Any] = obj["spec"]["template"]["spec"]
        return spec
    return None


def test_every_environment_variable_is_a_setting() -> None:
    known = settings_names() | RUNTIME
    found = env_names_in_deploy_files()
    assert len(found) >= 8
    for where, names in found.items():
        assert names <= known, (where, names - known)


def substitute(value: object, secrets: dict[str, str] | None = None) -> str:
    """A compose value as compose makes it: ${VAR:-default}, ${VAR:?error} from `secrets`."""
    known = secrets or {}

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3)
        if name in known:
            return known[name]
        if default is not None:
            return default
        raise KeyError(f"{name} is required and not set")

    return re.sub(r"\$\{([A-Z_]+)(:-([^}]*)|:\?[^}]*)?\}", one, str(value))


def env_example() -> dict[str, str]:
    text = (DEPLOY / "env.example").read_text()
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, re.M))


def filled_env() -> dict[str, str]:
    """deploy/.env as `make env` writes it."""
    text = new_env.fill((DEPLOY / "env.example").read_text())
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, re.M))


def test_compose_settings_are_valid_for_the_code() -> None:
    """The compose environment (secrets filled in by `make env`) builds Settings."""
    dotenv = filled_env()
    for name, svc in parley_services().items():
        env = {key: substitute(value, dotenv) for key, value in svc["environment"].items()}
        settings = Settings(**env)  # type: ignore[arg-type]
        assert settings.sqlalchemy_url.startswith("postgresql+asyncpg://"), name
        assert settings.redis_dsn == f"redis://:{dotenv['REDIS_PASSWORD']}@redis:6379/0"
        assert settings.s3_endpoint == "http://minio:9000"
        assert settings.cookie_secure is True, name
        assert settings.jwt_secret == dotenv["JWT_SECRET"]


def test_default_ports_agree_everywhere() -> None:
    server_port, gateway_port = SETTINGS_DEFAULTS.port, SETTINGS_DEFAULTS.gateway_port
    assert (server_port, gateway_port) == (5000, 8080)
    docker = (DEPLOY / "Dockerfile").read_text()
    assert f"EXPOSE {server_port} {gateway_port}" in docker
    assert f"PORT={server_port}" in docker and f"GATEWAY_PORT={gateway_port}" in docker
    services = compose()["services"]
    for name in ("server1", "server2"):
        assert services[name]["command"][-1] == str(server_port)
        assert f":{server_port}/health" in " ".join(services[name]["healthcheck"]["test"])
    for name in ("gateway1", "gateway2"):
        assert services[name]["command"][-1] == str(gateway_port)
        upstreams = services[name]["environment"]["PARLEY_UPSTREAMS"].split(",")
        assert upstreams == [f"http://server1:{server_port}", f"http://server2:{server_port}"]
    upstreams_conf = (DEPLOY / "nginx" / "upstreams.conf").read_text()
    assert re.findall(r"^server (\S+)", upstreams_conf, re.M) == [
        f"gateway1:{gateway_port}",
        f"gateway2:{gateway_port}",
    ]
    ports = {}
    for obj in k8s_objects():
        pod = _pod_spec(obj)
        if pod and obj["kind"] == "Deployment":
            ports[obj["metadata"]["name"]] = pod["containers"][0]["ports"][0]["containerPort"]
    assert ports == {"parley-server": server_port, "parley-gateway": gateway_port}
    config = next(o for o in k8s_objects() if o["kind"] == "ConfigMap")
    assert config["data"]["PARLEY_UPSTREAMS"] == f"http://parley-server:{server_port}"


def test_commands_and_flags_are_the_clis() -> None:
    parser = make_parser()
    commands = [svc["command"] for svc in parley_services().values()]
    for obj in k8s_objects():
        pod = _pod_spec(obj)
        if pod:
            commands.append(pod["containers"][0]["args"])
    docker = (DEPLOY / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["parley"]' in docker and 'CMD ["server"]' in docker
    assert {c[0] for c in commands} == {"server", "gateway", "migrate"}
    for command in commands:
        parser.parse_args(command)  # exits (SystemExit) on an unknown command or flag
    for unit in (DEPLOY / "systemd").glob("*.service"):
        line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
        args = line.split("parley ", 1)[1].replace("%i", "5001").split()
        parser.parse_args(args)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], set[str]]:
    data = tmp_path_factory.mktemp("paths")
    settings = Settings(PARLEY_DATA_DIR=data, JWT_SECRET="0123456789abcdef" * 3)  # type: ignore[call-arg]
    server_app = create_server(settings)
    server = set(server_app.openapi()["paths"]) | {
        getattr(r, "path", "") for r in server_app.routes
    }  # documented routes, and the undocumented ones (metrics, WebSocket) at the top
    gateway = {getattr(r, "path", "") for r in create_gateway(settings).router.routes}
    return server, gateway


def test_metrics_paths_and_scrape_targets_are_served(paths: tuple[set[str], set[str]]) -> None:
    server_paths, gateway_paths = paths
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    assert jobs["parley-server"]["metrics_path"] in server_paths
    assert jobs["parley-gateway"]["metrics_path"] in gateway_paths
    compose_services = set(compose()["services"])
    for job in prom["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, _port = target.rsplit(":", 1)
            assert host == "localhost" or host in compose_services, target
    assert jobs["parley-server"]["static_configs"][0]["targets"] == ["server1:5000", "server2:5000"]
    assert jobs["parley-gateway"]["static_configs"][0]["targets"] == [
        "gateway1:8080",
        "gateway2:8080",
    ]
    exporters = {job: jobs[job]["static_configs"][0]["targets"][0] for job in
                 ("postgres", "redis", "node")}  # fmt: skip
    assert exporters == {
        "postgres": "postgres-exporter:9187",
        "redis": "redis-exporter:9121",
        "node": "node-exporter:9100",
    }
    for obj in k8s_objects():
        if obj["kind"] == "Deployment":
            notes = obj["spec"]["template"]["metadata"]["annotations"]
            role_paths = server_paths if "server" in obj["metadata"]["name"] else gateway_paths
            assert notes["prometheus.io/path"] in role_paths


def test_probes_and_health_checks_use_health(paths: tuple[set[str], set[str]]) -> None:
    server_paths, gateway_paths = paths
    assert "/health" in server_paths and "/health" in gateway_paths
    for obj in k8s_objects():
        pod = _pod_spec(obj)
        if pod and obj["kind"] == "Deployment":
            container = pod["containers"][0]
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
            grace = pod["terminationGracePeriodSeconds"]
            pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
            config = next(o for o in k8s_objects() if o["kind"] == "ConfigMap")["data"]
            assert grace > pre_stop + float(config["PARLEY_SHUTDOWN_TIMEOUT"])
    for svc in parley_services().values():
        if svc["command"][0] != "migrate":
            assert "/health" in " ".join(svc["healthcheck"]["test"])
            grace = int(svc["stop_grace_period"].rstrip("s"))
            assert grace > float(svc["environment"].get("PARLEY_SHUTDOWN_DRAIN", 0))


def test_images_agree() -> None:
    for name, svc in parley_services().items():
        assert svc["image"] == "${PARLEY_IMAGE:-parley:latest}", name
    assert compose()["services"]["migrate"]["build"]["dockerfile"] == "deploy/Dockerfile"
    images = {
        c["image"] for obj in k8s_objects() if (pod := _pod_spec(obj)) for c in pod["containers"]
    }
    assert images == {"parley:latest"}
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["images"][0]["name"] == "parley"


def test_gateways_trust_exactly_nginx() -> None:
    services = compose()["services"]
    nginx_ip = services["nginx"]["networks"]["edge"]["ipv4_address"]
    for name in ("gateway1", "gateway2"):
        trusted = parse_networks(services[name]["environment"]["PARLEY_TRUSTED_PROXIES"].split(","))
        assert is_trusted(nginx_ip, trusted)
        assert "edge" in services[name]["networks"]
    for name in ("server1", "server2", "postgres", "redis", "minio", "grafana"):
        networks = services[name]["networks"]
        assert "edge" not in networks, name  # nothing else on the trusted network
    subnet = compose()["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    assert services["gateway1"]["environment"]["PARLEY_TRUSTED_PROXIES"].startswith(subnet)


def test_compose_has_the_whole_stack() -> None:
    services = compose()["services"]
    assert set(services) >= {
        "nginx", "gateway1", "gateway2", "server1", "server2", "postgres", "redis", "minio",
        "prometheus", "grafana", "postgres-exporter", "redis-exporter", "node-exporter",
    }  # fmt: skip
    for name, svc in services.items():
        assert "deploy" in svc, name
        assert "limits" in svc["deploy"].get("resources", {}), name
    for name in ("server1", "gateway1"):
        update = services[name]["deploy"]["update_config"]
        assert update["order"] == "start-first" and update["parallelism"] == 1
    grafana = services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert grafana.startswith("${GRAFANA_ADMIN_PASSWORD:?")
    for config in compose()["configs"].values():
        assert (DEPLOY / config["file"]).exists(), config
    assert set(compose()["volumes"]) >= {"postgres-data", "redis-data", "minio-data",
                                         "prometheus-data", "grafana-data"}  # fmt: skip


def test_systemd_units_verify(tmp_path: Path) -> None:
    """systemd-analyze accepts the units (paths pointed at this checkout, no warnings)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed: units checked by the CLI test above")
    parley = Path(sys.executable).parent / "parley"
    units = []
    for unit in sorted((DEPLOY / "systemd").glob("parley*")):
        if unit.suffix == ".example":
            continue
        text = unit.read_text().replace("/opt/parley/venv/bin/parley", str(parley))
        text = text.replace("/etc/parley/parley.env", str(DEPLOY / "systemd/parley.env.example"))
        name = unit.name.replace("@.", "@5000.")
        (tmp_path / name).write_text(text)
        units.append(str(tmp_path / name))
    assert len(units) == 4
    done = subprocess.run([tool, "verify", "--man=no", *units], capture_output=True, text=True,
                          check=False, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_image_and_pods_listen_on_every_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image's environment, read as Parley reads it, binds both roles to 0.0.0.0."""
    docker = (DEPLOY / "Dockerfile").read_text()
    env_block = docker.split("ENV PATH=", 1)[1].split("USER", 1)[0]
    for name, value in re.findall(r"([A-Z_]+)=(\S+)", env_block):
        if name != "PATH":
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.host, settings.server_host) == ("0.0.0.0", "0.0.0.0")
    assert (settings.port, settings.gateway_port) == (5000, 8080)
    assert str(settings.data_dir) == "/var/lib/parley"
    server = next(o for o in k8s_objects() if o["metadata"]["name"] == "parley-server"
                  and o["kind"] == "Deployment")  # fmt: skip
    env = {
        e["name"]: e["value"] for e in server["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["PARLEY_SERVER_HOST"] == "0.0.0.0"
    for name in ("server1", "server2"):
        assert compose()["services"][name]["environment"]["PARLEY_SERVER_HOST"] == "0.0.0.0"


# --- isolation: trusted proxies, Redis password, Secure cookies, secrets ------------------


def test_servers_trust_exactly_their_gateways() -> None:
    """Per-IP limits (login throttling) count real clients: the servers believe the address
    the gateways pass on, and only from the network the gateways reach them on."""
    services, networks = compose()["services"], compose()["networks"]
    subnet = networks["gateways"]["ipam"]["config"][0]["subnet"]
    assert subnet not in {n["ipam"]["config"][0]["subnet"] for k, n in networks.items()
                          if k != "gateways" and "ipam" in (n or {})}  # fmt: skip
    for name in ("server1", "server2"):
        env = services[name]["environment"]
        assert env["PARLEY_TRUSTED_PROXIES"] == subnet, name
        assert "gateways" in services[name]["networks"], name
    for name in ("gateway1", "gateway2"):
        # The gateways share only `gateways` with the servers: their requests come from it.
        shared = set(services[name]["networks"]) & set(services["server1"]["networks"])
        assert shared == {"gateways"}, name
    on_it = {name for name, svc in services.items() if "gateways" in svc.get("networks", [])}
    assert on_it == {"gateway1", "gateway2", "server1", "server2", "redis", "prometheus"}
    trusted = parse_networks([subnet])
    assert is_trusted("172.28.3.21", trusted) and not is_trusted("172.28.2.21", trusted)


def test_kubernetes_pods_trust_the_pod_network() -> None:
    config = next(o for o in k8s_objects() if o["kind"] == "ConfigMap")
    trusted = parse_networks(config["data"]["PARLEY_TRUSTED_PROXIES"].split(","))
    assert trusted and is_trusted("10.244.1.7", trusted)  # a pod address of a common CIDR
    assert "pod CIDR" in (K8S / "configmap.yaml").read_text()
    for obj in k8s_objects():
        pod = _pod_spec(obj)
        if pod and obj["kind"] == "Deployment":
            sources = pod["containers"][0]["envFrom"]
            assert {"configMapRef": {"name": "parley-config"}} in sources, obj["metadata"]
            assert {"secretRef": {"name": "parley-secrets"}} in sources, obj["metadata"]
            names = {e["name"] for e in pod["containers"][0].get("env", [])}
            assert "PARLEY_TRUSTED_PROXIES" not in names  # not overridden per Deployment


def test_redis_requires_a_password_in_compose_and_kubernetes() -> None:
    services = compose()["services"]
    command = services["redis"]["command"]
    password = command[command.index("--requirepass") + 1]
    assert password.startswith("${REDIS_PASSWORD:?"), password
    assert services["redis"]["environment"]["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD:?")
    assert services["redis-exporter"]["environment"]["REDIS_PASSWORD"].startswith(
        "${REDIS_PASSWORD:?"
    )
    for name, svc in parley_services().items():
        url = svc["environment"]["REDIS_URL"]
        assert url.startswith("redis://:${REDIS_PASSWORD:?"), name
        with pytest.raises(KeyError, match="REDIS_PASSWORD"):
            substitute(url)  # compose refuses to start without it
    objects = k8s_objects()
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert "REDIS_URL" not in config["data"]  # a URL with a password is a secret
    secret = next(o for o in objects if o["kind"] == "Secret")
    assert urlsplit(secret["stringData"]["REDIS_URL"]).password
    systemd = (DEPLOY / "systemd" / "parley.env.example").read_text()
    assert urlsplit(re.findall(r"^REDIS_URL=(.*)$", systemd, re.M)[0]).password


def test_cookies_are_secure_wherever_tls_is_on() -> None:
    for name, svc in parley_services().items():
        value = substitute(svc["environment"]["PARLEY_COOKIE_SECURE"], {})
        assert value == "true", name  # the default; .env may say false while trying HTTP
    assert env_example()["PARLEY_COOKIE_SECURE"] == "true"
    objects = k8s_objects()
    assert next(o for o in objects if o["kind"] == "Ingress")["spec"]["tls"]
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    assert Settings(**config).cookie_secure is True  # type: ignore[arg-type]
    systemd = (DEPLOY / "systemd" / "parley.env.example").read_text()
    assert re.search(r"^PARLEY_COOKIE_SECURE=true$", systemd, re.M)
    tls = (DEPLOY / "nginx" / "tls.conf").read_text()
    assert "proxy_cookie_flags ~ secure;" in tls


def _refused(key: str, value: str) -> str:
    with pytest.raises(ValidationError) as refused:
        Settings(**{key: value})  # type: ignore[arg-type]
    return str(refused.value)


def test_no_example_ships_a_secret_that_would_be_accepted() -> None:
    """Every secret in the examples is empty (compose refuses to start) or a placeholder
    Parley refuses (exit code 2): none can be copied into production by mistake."""
    secret = next(o for o in k8s_objects() if o["kind"] == "Secret")
    for key, value in secret["stringData"].items():
        assert "REPLACE_WITH" in value, key
        if key != "S3_ACCESS_KEY":  # an access key is a name, not a secret
            assert "placeholder" in _refused(key, value), key
    unit_env = (DEPLOY / "systemd" / "parley.env.example").read_text()
    systemd = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", unit_env, re.M))
    assert systemd["JWT_SECRET"] == ""
    assert "at least 32 bytes" in _refused("JWT_SECRET", systemd["JWT_SECRET"])
    for key in ("DATABASE_URL", "REDIS_URL"):
        assert "placeholder" in _refused(key, systemd[key]), key
    example = env_example()
    secret_keys = [k for k in example if k.endswith(("SECRET", "PASSWORD"))]
    assert set(secret_keys) == {"JWT_SECRET", "POSTGRES_PASSWORD", "REDIS_PASSWORD",
                                "MINIO_ROOT_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}  # fmt: skip
    text = COMPOSE.read_text()
    for key in secret_keys:
        assert example[key] == "", key
        assert "${" + key + ":?" in text, key  # compose refuses an empty one
    assert "openssl rand -hex 32" in (DEPLOY / "env.example").read_text()
    filled = filled_env()
    for key in secret_keys:
        assert re.fullmatch(r"[0-9a-f]{64}", filled[key]), key
    assert len({filled[k] for k in secret_keys}) == len(secret_keys)
    Settings(JWT_SECRET=filled["JWT_SECRET"])  # type: ignore[call-arg]
