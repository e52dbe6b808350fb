"""docker-compose.yml, the Dockerfile and .dockerignore, checked without a Docker engine.

Debian's docker-compose 1.29 validates and renders the file (`docker-compose config`);
these tests then read the rendered file and check that it asks only for settings the code
reads, that every URL and port points at the service that serves it, that every secret is
required, and that services wait for their dependencies' health checks. docker-compose
runs on its own Python, which also has PyYAML and docker-py: the tests use it to read the
rendered YAML and to compute the build context exactly as Docker's .dockerignore rules do.

docker-compose is required, not optional: CI installs it (`apt-get install -y
docker-compose`), and a missing one fails here with the command to run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from compose_support import (
    COMPOSE_FILE,
    REQUIRED,
    ROOT,
    SECRETS,
    besu_qbft,
    command,
    compose_python,
    container_ports,
    environment,
    load_script,
    option,
    rendered,
    run_compose,
    services,
)
from pydantic_settings import BaseSettings
from sqlalchemy.engine import make_url

from ledger_service._internal.logging_setup import LogSettings
from ledger_service.api.health import HealthSettings
from ledger_service.settings import Settings
from node_gateway.settings import GatewaySettings

mqtt_dev_certs = load_script("mqtt_dev_certs", ROOT / "deploy" / "mqtt_dev_certs.py")


# -- 1. compose accepts the file ----------------------------------------------------------


@pytest.mark.parametrize("env", [
    pytest.param({}, id="ganache-default"),
    pytest.param({"CHAIN_HOST": "besu-1", "CHAIN_ID": str(besu_qbft.DEFAULT_CHAIN_ID)},
                 id="besu"),
])
def test_docker_compose_config_accepts_the_file(env: dict[str, str]) -> None:
    for args in (("config", "-q"), ("--profile", "besu", "--profile", "monitoring",
                                    "config", "-q")):
        done = run_compose(*args, **env)
        assert done.returncode == 0, f"docker-compose {' '.join(args)}: {done.stderr}"


@pytest.mark.parametrize("secret", sorted(REQUIRED))
def test_every_secret_is_required(secret: str) -> None:
    done = run_compose("config", "-q", **{secret: None})
    assert done.returncode != 0
    assert "Variable not set" in done.stderr and secret in done.stderr


def test_secrets_have_no_defaults_anywhere() -> None:
    text = COMPOSE_FILE.read_text()
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, f"{name} is not used"
        assert all(u == ":?Variable not set" for u in uses), f"{name}: {uses}"
    # Nothing secret-looking is written into the file itself.
    assert not re.search(r"0x[0-9a-fA-F]{64}", text)
    rendered_env = {k: v for s in services().values() for k, v in environment(s).items()}
    for key, value in rendered_env.items():
        if re.search(r"PASSWORD|PRIVATE_KEY|SECRET", key):
            assert value in SECRETS.values(), f"{key} is not taken from a required variable"


# -- 2. only settings the code reads ------------------------------------------------------


def env_names(model: type[BaseSettings]) -> set[str]:
    """The environment variables a pydantic-settings model reads."""
    prefix = str(model.model_config.get("env_prefix", ""))
    names = set()
    for field, info in model.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        names.add((alias or prefix + field).upper())
    return names


LEDGER_NAMES = env_names(Settings) | env_names(LogSettings) | env_names(HealthSettings)
GATEWAY_NAMES = env_names(GatewaySettings)


def test_settings_introspection_sees_the_prefixes() -> None:
    assert {"LEDGER_DATABASE_URL", "LEDGER_RPC_URL", "LEDGER_LOG_FORMAT",
            "LEDGER_HEALTH_MAX_CHAIN_LAG_SECONDS"} <= LEDGER_NAMES
    assert {"GATEWAY_LEDGER_URL", "GATEWAY_DATA_DIR"} <= GATEWAY_NAMES


def _dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().startswith("ENV "):
            found |= dict(re.findall(r"(\w+)=(\S+)", line))
    return found


@pytest.mark.parametrize("env", [{}, {"CHAIN_HOST": "besu-1", "CHAIN_ID": "1338"}])
def test_environment_names_only_settings_the_code_reads(env: dict[str, str]) -> None:
    problems = []
    named: list[tuple[str, str]] = [("Dockerfile", k) for k in _dockerfile_env()]
    for name, svc in services(**env).items():
        named += [(name, k) for k in environment(svc)]
    for where, key in named:
        if key.startswith("LEDGER_") and key not in LEDGER_NAMES:
            problems.append(f"{where}: {key} is not a ledger setting")
        if key.startswith("GATEWAY_") and key not in GATEWAY_NAMES:
            problems.append(f"{where}: {key} is not a gateway setting")
    assert not problems, "\n".join(problems)


def deployment_file(directory: Path, rpc_url: str, chain_id: int) -> Path:
    """A deployment file as deploy-contract writes it (for this build of the contract)."""
    from eth_utils.crypto import keccak

    from ledger_service._internal.contract_artifacts import load_artifact
    from ledger_service.deployment import Deployment

    artifact = load_artifact("CarbonAnchor")
    path = directory / "deployment.json"
    Deployment(chain_id=chain_id, rpc_url=rpc_url, contract_address="0x" + "22" * 20,
               contract_code_keccak="0x" + keccak(artifact.deployed_bytecode).hex(),
               compiler=artifact.compiler, deployer="0x" + "33" * 20,
               deployed_at_block=1).write(path)
    return path


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for key in list(os.environ):
        if key.startswith(("LEDGER_", "GATEWAY_")):
            monkeypatch.delenv(key)
    yield monkeypatch


@pytest.mark.parametrize("env", [{}, {"CHAIN_HOST": "besu-1", "CHAIN_ID": "1338"}])
def test_services_settings_validate(env: dict[str, str], clean_environ: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    """The ledger's environment passes the production checks of Settings (with the
    deployment file deploy-contract writes), and the gateway's and deploy step's parse."""
    svc = services(**env)
    ledger_env = environment(svc["ledger"])
    for key, value in ledger_env.items():
        clean_environ.setenv(key, value)
    # What deploy-contract would have written, at a local path.
    clean_environ.setenv("LEDGER_DEPLOYMENT_FILE", str(deployment_file(
        tmp_path, ledger_env["LEDGER_RPC_URL"], int(ledger_env["LEDGER_CHAIN_ID"]))))
    settings = Settings()
    assert settings.contract_address == "0x" + "22" * 20
    assert settings.environment == "production" and settings.chain == "rpc"
    assert LogSettings().log_format == "json"
    HealthSettings()

    prestart = load_script("prestart", ROOT / "deploy" / "prestart.py")
    deploy_env = environment(svc["deploy-contract"])
    for key in deploy_env:
        clean_environ.delenv(key, raising=False)
    for key, value in deploy_env.items():
        clean_environ.setenv(key, value)
    chain = prestart.ChainSettings()
    assert (chain.rpc_url, chain.chain_id, chain.anchor_private_key) == (
        settings.rpc_url, settings.chain_id, settings.anchor_private_key)

    ca_file = ROOT / "deploy" / "mqtt_dev_certs.py"  # any existing file stands in for it
    for key, value in environment(svc["gateway"]).items():
        clean_environ.setenv(key, str(ca_file) if key == "GATEWAY_MQTT_CA_FILE" else value)
    gateway = GatewaySettings()
    assert gateway.ledger_url == "http://ledger:8000"


# -- 3. URLs and ports point at the services that serve them ------------------------------


def test_database_url_points_at_postgres() -> None:
    svc = services()
    url = make_url(environment(svc["ledger"])["LEDGER_DATABASE_URL"])
    pg = environment(svc["postgres"])
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "postgres" and "postgres" in svc
    assert url.port == int(option(svc["postgres"]["healthcheck"]["test"], "-p")) == 5432
    assert url.username == pg["POSTGRES_USER"] == option(svc["postgres"]["healthcheck"]["test"],
                                                         "-U")
    assert url.database == pg["POSTGRES_DB"]
    assert url.password == pg["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]


def test_rpc_url_points_at_ganache_by_default() -> None:
    svc = services()
    ganache = command(svc["ganache"])
    for name in ("ledger", "deploy-contract"):
        env = environment(svc[name])
        url = urlsplit(env["LEDGER_RPC_URL"])
        assert url.hostname == "ganache"
        assert url.port == int(option(ganache, "--server.port"))
        assert int(env["LEDGER_CHAIN_ID"]) == int(option(ganache, "--chain.chainId"))
    funded = option(ganache, "--wallet.accounts").split(",")[0]
    assert funded == environment(svc["ledger"])["LEDGER_ANCHOR_PRIVATE_KEY"]
    assert f"port: {url.port}" in " ".join(svc["ganache"]["healthcheck"]["test"])


def test_rpc_url_points_at_besu_in_the_besu_profile() -> None:
    svc = services(CHAIN_HOST="besu-1", CHAIN_ID=str(besu_qbft.DEFAULT_CHAIN_ID))
    for name in ("ledger", "deploy-contract"):
        env = environment(svc[name])
        url = urlsplit(env["LEDGER_RPC_URL"])
        assert url.hostname == "besu-1" and url.port == besu_qbft.RPC_PORT
        assert int(env["LEDGER_CHAIN_ID"]) == besu_qbft.DEFAULT_CHAIN_ID


def test_besu_nodes_match_the_generated_network() -> None:
    doc = rendered()
    svc = doc["services"]
    ipam = doc["networks"]["default"]["ipam"]["config"][0]
    subnet, dynamic = ip_network(ipam["subnet"]), ip_network(ipam["ip_range"])
    for n, host in enumerate(besu_qbft.DEFAULT_HOSTS, 1):
        node = svc[f"besu-{n}"]
        assert node["profiles"] == ["besu"]
        address = node["networks"]["default"]["ipv4_address"]
        assert address == host
        assert ip_address(address) in subnet and ip_address(address) not in dynamic
        assert command(node) == [f"--config-file={besu_qbft.MOUNT}/validator-{n}/config.toml"]
        targets = {str(v).split(":")[1] if isinstance(v, str) else v["target"]
                   for v in node["volumes"]}
        assert {besu_qbft.MOUNT, besu_qbft.DATA_PATH} <= targets
        assert f"/dev/tcp/127.0.0.1/{besu_qbft.RPC_PORT}" in " ".join(node["healthcheck"]["test"])
    # The generator writes configs whose peers are exactly these services' addresses.
    assert len({svc[f"besu-{n}"]["networks"]["default"]["ipv4_address"]
                for n in range(1, 5)}) == 4


def test_gateway_and_prometheus_reach_the_ledger_port() -> None:
    svc = services()
    ledger = svc["ledger"]
    cmd = command(ledger)
    port = int(option(cmd, "--port"))
    assert option(cmd, "--host") == "0.0.0.0"
    assert cmd[cmd.index("--") + 1:][:2] == ["carbon-ledger", "serve"]
    assert port in container_ports(ledger)
    assert f"http://127.0.0.1:{port}/health" in " ".join(ledger["healthcheck"]["test"])
    gateway_url = urlsplit(environment(svc["gateway"])["GATEWAY_LEDGER_URL"])
    assert (gateway_url.hostname, gateway_url.port) == ("ledger", port)
    scrape = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    assert f'targets: ["ledger:{port}"]' in scrape


MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"


def mosquitto_conf() -> dict[str, Any]:
    """What docker-compose needs to know from deploy/mosquitto/mosquitto.conf: listeners
    (port -> bind address, TLS or not) and every file or directory it names."""
    assert MOSQUITTO_CONF.exists(), "deploy/mosquitto/mosquitto.conf is missing"
    listeners: dict[int, dict[str, Any]] = {}
    paths: dict[str, str] = {}
    current: dict[str, Any] | None = None
    for raw in MOSQUITTO_CONF.read_text().splitlines():
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        key, args = words[0], words[1:]
        if key == "listener":
            current = {"bind": args[1] if len(args) > 1 else None, "tls": False}
            listeners[int(args[0])] = current
        elif key in ("certfile", "keyfile", "cafile") and current is not None:
            current["tls"] = True
            paths[key] = args[0]
        elif key in ("password_file", "acl_file", "persistence_location"):
            paths[key] = args[0]
    return {"listeners": listeners, "paths": paths}


def mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Mount target -> source of a service's volumes."""
    out = {}
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target = v.split(":")[:2]
        else:
            source, target = str(v.get("source")), v["target"]
        out[target] = source
    return out


def test_mqtt_host_and_port_point_at_mosquitto() -> None:
    conf = mosquitto_conf()
    svc = services()
    mosquitto, gateway = svc["mosquitto"], svc["gateway"]
    gw = environment(gateway)
    assert gw["GATEWAY_MQTT_HOST"] == "mosquitto"
    port = int(gw["GATEWAY_MQTT_PORT"])
    listener = conf["listeners"].get(port)
    assert listener is not None, f"mosquitto.conf has no listener on {port}"
    assert listener["bind"] in (None, "0.0.0.0", "::"), \
        f"listener {port} is bound to {listener['bind']}: other containers cannot reach it"
    assert port in container_ports(mosquitto)
    assert gw["GATEWAY_MQTT_PASSWORD"] == SECRETS["MQTT_PASSWORD"]
    assert gw["GATEWAY_MQTT_USERNAME"] == environment(mosquitto)["MQTT_USERNAME"]
    if listener["tls"]:
        assert gw["GATEWAY_MQTT_TLS"] == "true"
        ca = mounts(gateway)[gw["GATEWAY_MQTT_CA_FILE"]]
        assert ca == f"{REQUIRED['MQTT_CERTS_DIR']}/{Path(conf['paths']['cafile']).name}"
    check = " ".join(mosquitto["healthcheck"]["test"])
    health_port = int(option(check.split(), "-p"))
    assert health_port in conf["listeners"], f"health check uses port {health_port}"


def test_mosquitto_gets_every_path_its_config_names() -> None:
    conf = mosquitto_conf()
    svc = services()
    mosquitto = svc["mosquitto"]
    script = command(mosquitto)[-1]
    targets = mounts(mosquitto)
    assert Path(targets["/mosquitto/config/mosquitto.conf"]) == MOSQUITTO_CONF
    paths = conf["paths"]
    # Built by the start command on the tmpfs, owned by the broker's user.
    assert f": > {paths['password_file']}" in script
    assert f"mosquitto_passwd -b {paths['password_file']} " in script
    assert any(t == "/etc/mosquitto" for t in mosquitto["tmpfs"])
    certs_in = next(t for t, src in targets.items() if src == REQUIRED["MQTT_CERTS_DIR"])
    for key in ("certfile", "keyfile", "cafile"):
        if key in paths:
            name = Path(paths[key]).name
            assert f"{certs_in}/{name}" in script, f"{name} is not copied for the broker"
            assert f"{Path(paths[key]).parent}/" in script
            assert name in mqtt_dev_certs.FILES, f"deploy/mqtt_dev_certs.py does not make {name}"
    chown = script.split("chown -R mosquitto:mosquitto ", 1)[1].split("&&")[0].split()
    for owned in (paths["password_file"], str(Path(paths.get("certfile", "/x/y")).parent),
                  paths["persistence_location"].rstrip("/")):
        assert owned in chown, f"{owned} is not given to the mosquitto user"
    assert paths["acl_file"] in targets
    assert targets[paths["persistence_location"].rstrip("/")] == "mosquitto-data"


def test_files_mounted_from_the_checkout_exist() -> None:
    missing = []
    for name, service in services().items():
        for target, source in mounts(service).items():
            path = Path(source)
            if not path.is_absolute() or ROOT not in path.parents or \
                    str(path).startswith(str(ROOT / "var")):
                continue  # a named volume, or operator data under var/
            if not path.exists():
                missing.append((name, target, path))
    theirs = [m for m in missing if (ROOT / "deploy" / "mosquitto") in m[2].parents]
    ours = [m for m in missing if m not in theirs]
    assert not ours, ours
    assert not theirs, [str(p.relative_to(ROOT)) for _, _, p in theirs]


def test_deploy_step_and_ledger_share_the_deployment_file() -> None:
    svc = services()
    deploy, ledger = svc["deploy-contract"], svc["ledger"]
    file = environment(deploy)["LEDGER_DEPLOYMENT_FILE"]
    assert environment(ledger)["LEDGER_DEPLOYMENT_FILE"] == file
    assert command(deploy)[:3] == ["python", "deploy/prestart.py", "deploy-contract"]
    assert command(ledger)[:3] == ["python", "deploy/prestart.py", "exec"]
    directory = str(Path(file).parent)
    assert mounts(deploy)[directory] == mounts(ledger)[directory] == "deployment"
    assert f"{directory}:ro" in " ".join(str(v) for v in ledger["volumes"])
    assert file in " ".join(deploy["healthcheck"]["test"])
    assert deploy["restart"] == "no"


# -- 4. health checks and ordering --------------------------------------------------------


def test_every_service_has_a_health_check_and_waits_for_healthy_dependencies() -> None:
    svc = services()
    for name, service in svc.items():
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
        for dep, how in (service.get("depends_on") or {}).items():
            assert dep in svc, f"{name} depends on unknown {dep}"
            if how["condition"] == "service_completed_successfully":
                assert svc[dep]["restart"] == "no", f"{dep} is waited for but not one-shot"
            else:
                assert how["condition"] == "service_healthy", f"{name} -> {dep}: {how}"
    assert svc["ledger"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "deploy-contract": {"condition": "service_completed_successfully"}}
    assert svc["deploy-contract"]["depends_on"] == {"ganache": {"condition": "service_healthy"}}
    assert svc["gateway"]["depends_on"] == {"ledger": {"condition": "service_healthy"},
                                            "mosquitto": {"condition": "service_healthy"}}


# -- 5. the image -------------------------------------------------------------------------


@cache
def build_context() -> frozenset[str]:
    """Files Docker would send as the build context (docker-py's .dockerignore rules)."""
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.lstrip().startswith("#")]
    done = subprocess.run(
        [compose_python(), "-c",
         "import json, sys; from docker.utils.build import exclude_paths; "
         "json.dump(sorted(exclude_paths(sys.argv[1], json.loads(sys.argv[2]))), sys.stdout)",
         str(ROOT), json.dumps(patterns)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return frozenset(json.loads(done.stdout))


def test_build_context_has_what_the_image_needs() -> None:
    context = build_context()
    needed = ["pyproject.toml", "README.md", "deploy/prestart.py",
              "contracts/artifacts/CarbonAnchor.json", "ledger_service/_cli.py",
              "ledger_service/py.typed", "node_gateway/_cli.py", "carbon_protocol/__init__.py"]
    assert not [p for p in needed if p not in context]
    # Every package pyproject.toml installs is in the context.
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    for pattern in include:
        top = pattern.rstrip("*")
        for init in ROOT.glob(f"{top}*/__init__.py"):
            assert str(init.relative_to(ROOT)) in context, init


def test_build_context_leaves_out_local_state_and_keys() -> None:
    context = build_context()
    leaked = [p for p in context
              if p.startswith((".git/", ".venv/", "node_modules/", "var/", "tests/",
                               ".mypy_cache/", ".pytest_cache/", ".hypothesis/"))
              or p.endswith((".pem", "/key", ".pyc")) or p.split("/")[-1] == ".env"]
    assert not leaked, leaked[:20]


def test_dockerfile_installs_editable_and_runs_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "pip install --no-deps -e ." in text  # artifacts are read from /app/contracts
    assert re.search(r"^USER carbon$", text, re.M)
    env = _dockerfile_env()
    assert env["LEDGER_DATA_DIR"] == "/data/ledger" == environment(
        services()["ledger"])["LEDGER_DATA_DIR"]
    assert env["GATEWAY_DATA_DIR"] == "/data/gateway"
