"""Running docker-compose without a Docker engine, and reading what it renders.

Shared by the compose tests. docker-compose is required: a missing one fails the test
with the command that installs it, never skips it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret-dummy",
    "LEDGER_ANCHOR_PRIVATE_KEY": "0x" + "11" * 32,
    "MQTT_PASSWORD": "mqtt-secret-dummy",
    "GATEWAY_API_KEY": "clk_00aa00aa00aa00aa_" + "A" * 43,
}
#: Every variable compose requires: the secrets, and where the broker's certificates are.
REQUIRED = SECRETS | {"MQTT_CERTS_DIR": str(ROOT / "var" / "mosquitto-certs")}
#: Variables of the operator's environment that would change what compose renders.
_COMPOSE_VARS = re.compile(r"^(LEDGER_|GATEWAY_|POSTGRES_|MQTT_|CHAIN_|BESU_|CARBON_|COMPOSE_)")


def load_script(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


besu_qbft = load_script("besu_qbft", ROOT / "scripts" / "besu_qbft.py")


# -- running docker-compose ---------------------------------------------------------------


@cache
def compose_binary() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("docker-compose is not installed, so docker-compose.yml cannot be "
                    "validated. Install Debian's (1.29; it needs no Docker engine): "
                    "apt-get install -y docker-compose", pytrace=False)
    return found


@cache
def compose_python() -> str:
    """The interpreter docker-compose runs on (it has PyYAML and docker-py)."""
    first = Path(compose_binary()).read_bytes()[:200].split(b"\n", 1)[0].decode(errors="replace")
    interpreter = first.removeprefix("#!").strip().split()
    if not first.startswith("#!") or not interpreter:
        pytest.fail(f"{compose_binary()} is not the Python docker-compose 1.x "
                    "(apt-get install -y docker-compose)", pytrace=False)
    return interpreter[-1] if interpreter[0].endswith("env") else interpreter[0]


def compose_env(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not _COMPOSE_VARS.match(k)}
    env |= REQUIRED
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_compose(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([compose_binary(), "-f", str(COMPOSE_FILE), *args], cwd=ROOT,
                          env=compose_env(**env), capture_output=True, text=True, timeout=120)


@cache
def _rendered(env_items: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    done = run_compose("config", **dict(env_items))
    assert done.returncode == 0, done.stderr
    to_json = subprocess.run(
        [compose_python(), "-c",
         "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
        input=done.stdout, capture_output=True, text=True, timeout=60)
    assert to_json.returncode == 0, to_json.stderr
    doc: dict[str, Any] = _as_received(json.loads(to_json.stdout))
    return doc


def _as_received(value: Any) -> Any:
    """The rendered file as the engine receives it: ``config`` prints ``$$`` (so that its
    output is still a compose file), a container gets ``$``."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_as_received(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_received(v) for k, v in value.items()}
    return value


def rendered(**env: str) -> dict[str, Any]:
    """``docker-compose config`` as data, as the engine receives it (required variables
    set to dummies, plus ``env``)."""
    return _rendered(tuple(sorted(env.items())))


def services(**env: str) -> dict[str, dict[str, Any]]:
    svc: dict[str, dict[str, Any]] = rendered(**env)["services"]
    return svc


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command(service: Mapping[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def option(cmd: list[str], name: str) -> str:
    """The value of ``--name=value`` or ``--name value`` in ``cmd``."""
    for i, arg in enumerate(cmd):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(cmd):
            return cmd[i + 1]
    raise AssertionError(f"{name} not in {cmd}")


def container_ports(service: Mapping[str, Any]) -> set[int]:
    """Container-side ports of a service's ``ports`` entries."""
    out = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            out.add(int(entry["target"]))
        else:
            out.add(int(str(entry).rsplit(":", 1)[-1].split("/")[0]))
    return out
