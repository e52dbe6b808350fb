"""docker-compose.yml run without Docker: the services' own command lines and environments,
taken from the rendered file, against local stand-ins for the containers.

* ganache from the pinned npm package (the same software as the ``trufflesuite/ganache``
  image), started with the compose service's exact flags;
* a fresh database on the local PostgreSQL server for ``postgres``;
* ``deploy-contract``, ``ledger`` and ``gateway`` run from this checkout (the image's
  ``/app``), with host names, ports and volume paths rewritten to local ones.

Then the ledger must pass the compose health check, the gateway must deliver readings
through it, and the readings must be anchored, with every log line JSON.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from compose_support import command, environment, services
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ledger_service.devchain import DEV_KEYS, ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.chain, pytest.mark.postgres,
              pytest.mark.timeout(300)]

BIN = Path(sys.executable).parent
ANCHOR_KEY = DEV_KEYS[2]  # stands in for the operator's LEDGER_ANCHOR_PRIVATE_KEY


def local(cmd: list[str]) -> list[str]:
    """A container command run from this checkout's virtualenv."""
    head = cmd[0]
    return [str(BIN / head) if (BIN / head).exists() else head, *cmd[1:]]


def replace_option(cmd: list[str], name: str, value: str) -> list[str]:
    out = list(cmd)
    for i, arg in enumerate(out):
        if arg.startswith(name + "="):
            out[i] = f"{name}={value}"
            return out
        if arg == name:
            out[i + 1] = value
            return out
    raise AssertionError(f"{name} not in {cmd}")


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database on the local server (CARBON_TEST_DATABASE_URL's, or the default)."""
    server = os.environ.get("CARBON_TEST_DATABASE_URL",
                            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"carbon_compose_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server here: this test needs one
        admin.dispose()
        pytest.fail(f"needs a PostgreSQL server at {make_url(server).host}: {exc}", pytrace=False)
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def ganache(tmp_path: Path) -> Iterator[str]:
    """ganache started with the compose service's own flags (host, port, path local)."""
    binary = ROOT / "node_modules" / ".bin" / "ganache"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `npm ci` (package.json pins ganache)")
    cmd = command(services(LEDGER_ANCHOR_PRIVATE_KEY=ANCHOR_KEY)["ganache"])
    port = free_port()
    cmd = replace_option(cmd, "--server.host", "127.0.0.1")
    cmd = replace_option(cmd, "--server.port", str(port))
    cmd = replace_option(cmd, "--database.dbPath", str(tmp_path / "ganache-db"))
    (tmp_path / "ganache-db").mkdir()
    proc = subprocess.Popen([str(binary), *cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"ganache refused the compose flags: {proc.stderr.read()!r}"
        try:
            if httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                                     "params": []}, timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "ganache did not answer within 60 s"
        time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(cmd: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180, **kw)


def test_the_compose_services_start_serve_and_anchor(tmp_path: Path, ganache: str,
                                                      database: str) -> None:
    svc = services(LEDGER_ANCHOR_PRIVATE_KEY=ANCHOR_KEY)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("LEDGER_", "GATEWAY_", "CARBON_"))}
    base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"  # the image's PATH has them
    deployment = tmp_path / "deployment" / "deployment.json"

    # deploy-contract, twice: the second run finds the first deployment.
    deploy_env = base | environment(svc["deploy-contract"]) | {
        "LEDGER_RPC_URL": ganache, "LEDGER_DEPLOYMENT_FILE": str(deployment)}
    deploy_cmd = local(command(svc["deploy-contract"]))
    for _ in range(2):
        done = run(deploy_cmd, deploy_env)
        assert done.returncode == 0, done.stderr
    address = json.loads(deployment.read_text())["contract_address"]

    # ledger, through prestart exec, with the production settings of the compose file.
    port = free_port()
    ledger_env = base | environment(svc["ledger"]) | {
        "LEDGER_RPC_URL": ganache,
        "LEDGER_DEPLOYMENT_FILE": str(deployment),
        "LEDGER_DATABASE_URL": database,
        "LEDGER_DATA_DIR": str(tmp_path / "ledger-data"),
        "LEDGER_LOG_KEY_FILE": str(tmp_path / "ledger-data" / "log_key.pem"),
        "LEDGER_ANCHOR_EVERY_SECONDS": "1",  # not the compose default: a quick test
    }
    ledger_cmd = replace_option(local(command(svc["ledger"])), "--port", str(port))
    ledger_cmd = replace_option(ledger_cmd, "--host", "127.0.0.1")
    log_file = tmp_path / "ledger.log"
    with log_file.open("w") as log_out:
        proc = subprocess.Popen(ledger_cmd, cwd=ROOT, env=ledger_env,
                                stdout=subprocess.DEVNULL, stderr=log_out)
    try:
        # The compose health check itself, pointed at the local port.
        check = [str(c) for c in svc["ledger"]["healthcheck"]["test"][1:]]
        check = [re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", c) for c in check]
        deadline = time.monotonic() + 120
        while run(local(check), base).returncode != 0:
            assert proc.poll() is None, log_file.read_text()[-3000:]
            assert time.monotonic() < deadline, "ledger never healthy: " + log_file.read_text()
            time.sleep(0.5)
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health["status"] == "ok"
        assert health["components"]["chain"]["kind"] == "rpc"
        assert health["components"]["chain"]["chain_id"] == 1337

        # gateway: provision, record a few readings, deliver them.
        gw_env = base | environment(svc["gateway"]) | {
            "GATEWAY_LEDGER_URL": f"http://127.0.0.1:{port}",
            "GATEWAY_DATA_DIR": str(tmp_path / "gateway-data"),
        }
        gw_env = {k: v for k, v in gw_env.items() if not k.startswith("GATEWAY_MQTT")}
        # The operator registers the gateway's key, as docker-compose.yml's header says.
        registered = run([str(BIN / "carbon-ledger"), "apikey", "create", "--role", "gateway",
                          "--enterprise", "86.1000.1/ent.demo", "--stdin"], ledger_env,
                         input=gw_env["GATEWAY_API_KEY"] + "\n")
        assert registered.returncode == 0, registered.stderr
        for args in (["provision"], ["simulate", "--days", "0.05"], ["flush", "--quiet"]):
            done = run([str(BIN / "carbon-gateway"), *args], gw_env)
            assert done.returncode == 0, f"carbon-gateway {args[0]}: {done.stderr}"
        assert "rejected 0" in done.stderr and "accepted 0," not in done.stderr
        gw_check = [str(c) for c in svc["gateway"]["healthcheck"]["test"][1:]]
        assert run(local(gw_check), gw_env).returncode == 0

        deadline = time.monotonic() + 90
        while True:
            anchoring = httpx.get(f"http://127.0.0.1:{port}/health").json()[
                "components"]["anchoring"]
            if anchoring["tree_size"] and (anchoring["anchored_tree_size"]
                                           == anchoring["tree_size"]):
                break
            assert time.monotonic() < deadline, f"not anchored: {anchoring}"
            time.sleep(0.5)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert re.search(r'carbon_ledger_readings_total\{status="accepted"\} [1-9]', metrics)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    lines = [line for line in log_file.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    messages = [r["msg"] for r in records]
    assert f"CarbonAnchor at {address} is ready" in messages
    assert any(m.startswith("the database postgresql+psycopg://postgres") for m in messages)
    assert any("is final" in m for m in messages)


# -- the broker ---------------------------------------------------------------------------

#: Container paths of the mosquitto service, the enclosing ones first.
MOSQUITTO_PATHS = ("/etc/mosquitto", "/var/lib/mosquitto", "/mosquitto/config/mosquitto.conf",
                   "/mosquitto/certs", "/mosquitto/users")


def _localise(text_in: str, local_root: Path) -> str:
    """Container paths of the mosquitto service, moved under ``local_root``."""
    pattern = "|".join(re.escape(p) for p in MOSQUITTO_PATHS)
    return re.sub(pattern, lambda m: str(local_root) + m[0], text_in)


@pytest.fixture
def broker_root() -> Iterator[Path]:
    """A directory the broker can still reach after it drops root's privileges (pytest's
    own temporary directories are private to their owner)."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="carbon-mosquitto-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_mosquitto_runs_the_project_config_as_compose_provides_it(broker_root: Path) -> None:
    """The compose service's start script and deploy/mosquitto/mosquitto.conf, with the
    container paths moved under a temporary directory and the ports made free ones."""
    import shutil

    from compose_support import ROOT as CHECKOUT
    from compose_support import load_script

    conf_file = CHECKOUT / "deploy" / "mosquitto" / "mosquitto.conf"
    broker = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    tools = [shutil.which(t) for t in ("mosquitto_sub", "mosquitto_pub", "mosquitto_passwd")]
    assert conf_file.exists(), "deploy/mosquitto/mosquitto.conf is missing"
    if broker is None or None in tools:
        pytest.fail("needs mosquitto and its clients (apt-get install mosquitto "
                    "mosquitto-clients)", pytrace=False)
    svc = services()
    mq = svc["mosquitto"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQTT_")} | environment(mq)
    user, password = env["MQTT_USERNAME"], env["MQTT_PASSWORD"]
    plain, tls = free_port(), free_port()
    tls_port = int(environment(svc["gateway"])["GATEWAY_MQTT_PORT"])

    # What the volumes would hold: the config, certificates, one meter user, the ACL.
    (broker_root / "mosquitto" / "config").mkdir(parents=True)
    (broker_root / "etc" / "mosquitto").mkdir(parents=True)
    (broker_root / "var" / "lib" / "mosquitto").mkdir(parents=True)
    (broker_root / "mosquitto" / "users").mkdir(parents=True)
    conf = _localise(conf_file.read_text(), broker_root)
    conf = re.sub(r"^listener\s+(\d+).*$",
                  lambda m: f"listener {plain if int(m[1]) != tls_port else tls} 127.0.0.1",
                  conf, flags=re.M)
    conf = re.sub(r"^log_dest\s+syslog", "log_dest stderr", conf, flags=re.M)
    (broker_root / "mosquitto" / "config" / "mosquitto.conf").write_text(conf)
    load_script("mqtt_dev_certs", CHECKOUT / "deploy" / "mqtt_dev_certs.py").write_certificates(
        broker_root / "mosquitto" / "certs")
    meter_file = broker_root / "mosquitto" / "users" / "meters.passwd"
    subprocess.run([tools[2], "-c", "-b", str(meter_file), "dev.elec-01", "meter-pw"],
                   check=True, capture_output=True)
    acl = (CHECKOUT / "deploy" / "mosquitto" / "acl").read_text()
    (broker_root / "etc" / "mosquitto" / "acl").write_text(
        acl.replace("user carbon-gateway", f"user {user}"))

    script = _localise(command(mq)[-1], broker_root)
    script = script.replace("exec mosquitto ", f"exec {broker} ")
    if os.geteuid() != 0:  # only root can give files away; the broker then keeps our uid
        script = script.replace("chown -R mosquitto:mosquitto", "true")
    log = broker_root / "mosquitto.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["sh", "-c", script], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        check = " ".join(mq["healthcheck"]["test"][1:]).replace("-p 1883", f"-p {plain}")
        deadline = time.monotonic() + 30
        while subprocess.run(["sh", "-c", check], env=env, capture_output=True).returncode:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        passwd = broker_root / "etc" / "mosquitto" / "passwd"
        assert (passwd.stat().st_mode & 0o077) == 0
        ca = broker_root / "mosquitto" / "certs" / "ca.crt"

        def sub(*args: str) -> int:
            return subprocess.run([str(tools[0]), *args, "-t", "carbon/+/+/reading", "-E",
                                   "-W", "5"], capture_output=True).returncode

        # The gateway's way in: TLS, the broker certificate checked against the CA.
        assert sub("-h", "localhost", "-p", str(tls), "--cafile", str(ca), "-u", user,
                   "-P", password) == 0
        assert sub("-h", "127.0.0.1", "-p", str(plain), "-u", user, "-P", "wrong") != 0
        meter = subprocess.run([str(tools[1]), "-h", "127.0.0.1", "-p", str(plain),
                                "-u", "dev.elec-01", "-P", "meter-pw", "-q", "1",
                                "-t", "carbon/site/dev.elec-01/reading", "-m", "{}"],
                               capture_output=True)
        assert meter.returncode == 0, meter.stderr  # a meter user from MQTT_USERS_DIR
    finally:
        proc.terminate()
        proc.wait(timeout=10)
