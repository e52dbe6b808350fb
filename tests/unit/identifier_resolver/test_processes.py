"""Delegation across processes: a root node and a secondary node, each its own
``python -m identifier_resolver serve`` process on its own port and database; the client
asks the root, gets a signed referral, verifies it, and only then asks the URL inside it.
Custody walks started at the root's prefix splice in the secondary's subgraph."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from carbon_protocol.suites import PrivateKey
from identifier_resolver import records as R
from identifier_resolver.client import ResolverClient
from identifier_resolver.errors import DeactivatedError, NotFoundError
from identifier_resolver.resolver import Resolver
from identifier_resolver.settings import ResolverSettings

ROOT_DIR = Path(__file__).resolve().parents[3]
SUB = "86.2100"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(settings: ResolverSettings) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT_DIR), "RESOLVER_DATA_DIR": str(settings.data_dir),
           "RESOLVER_TRUST_ROOT_KEY": str(settings.trust_root_key), "RESOLVER_CHAIN": "none",
           "RESOLVER_NODE_ID": settings.node_id, "RESOLVER_LOG_SUITE": settings.log_suite,
           "RESOLVER_ROOT": "true" if settings.root else "false"}
    if settings.log_prefix is not None:
        env["RESOLVER_LOG_PREFIX"] = settings.log_prefix
    return env


def _serve(settings: ResolverSettings, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "identifier_resolver", "serve", "--port", str(port)],
        cwd=ROOT_DIR, env=_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise AssertionError(f"node did not start: {err}")
        time.sleep(0.2)


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[dict[str, object]]:
    """Two nodes prepared in this process, then served by two other processes."""
    owner, enterprise = PrivateKey.generate("intl"), PrivateKey.generate("sm")
    trust_key = f"intl:{owner.public_key().hex()}"
    root_port, sub_port = _free_port(), _free_port()
    root_s = ResolverSettings(data_dir=tmp_path / "root", root=True, node_id="root",
                              log_suite="intl", trust_root_key=trust_key, chain="none")
    sub_s = ResolverSettings(data_dir=tmp_path / "sub", root=False, node_id="sub",
                             log_suite="sm", log_prefix=SUB, trust_root_key=trust_key,
                             chain="none")
    root, sub = Resolver.open(root_s), Resolver.open(sub_s)
    try:
        root.bootstrap(owner, ["86.1000.1"], url=f"http://127.0.0.1:{root_port}")
        d = R.delegation("0", SUB, owner_keys=[enterprise.public_key()],
                         node_key=sub.node_key.public_key(), url=f"http://127.0.0.1:{sub_port}",
                         log_id=sub.settings.log_id, node_id="sub", key=owner)
        root.submit([d])
        sub.install_authority([d])
        ent, dev = f"{SUB}/ent.x", f"{SUB}/dev.x"
        sub.submit([R.new_record(ent, "enterprise", ent, enterprise),
                    R.new_record(dev, "device", ent, enterprise, links=[("part_of", ent)])])
        sub.submit([R.deactivation(sub.current_records([dev])[dev], enterprise,
                                   "meter replaced")])
        root.submit([R.new_record("86.1000.1/rep.1", "report", "86.1000.1/ent.a", owner,
                                  links=[("summarises", f"{SUB}/ent.x")])])
        trust = root.trust_root(f"http://127.0.0.1:{root_port}")
    finally:
        root.engine.dispose()
        sub.engine.dispose()
    procs = [_serve(root_s, root_port), _serve(sub_s, sub_port)]
    try:
        yield {"trust": trust, "sub_url": f"http://127.0.0.1:{sub_port}"}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
            if proc.stderr is not None:
                proc.stderr.close()


def test_resolution_follows_delegation_across_processes(federation: dict[str, object]) -> None:
    with ResolverClient(federation["trust"]) as client:  # type: ignore[arg-type]
        verified = client.resolve(f"{SUB}/ent.x")
        assert verified.answer.node_id == "sub" and verified.authority == SUB
        assert client.locate(f"{SUB}/ent.x") == federation["sub_url"]
        with pytest.raises(DeactivatedError) as gone:
            client.resolve(f"{SUB}/dev.x")
        assert [v.record.version for v in gone.value.answer.answer.history] == [1]
        with pytest.raises(NotFoundError):
            client.resolve(f"{SUB}/dev.never")
        graph = client.custody("86.1000.1/rep.1", "down", 2)
        assert {n.id for n in graph.nodes} >= {"86.1000.1/rep.1", f"{SUB}/ent.x"}
        spliced = [n for n in graph.nodes if n.id == f"{SUB}/ent.x"]
        assert [(n.state, n.type) for n in spliced] == [("present", "enterprise")]
