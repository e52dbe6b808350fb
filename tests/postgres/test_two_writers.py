"""Two real ``carbon-ledger serve`` processes on one PostgreSQL database never fork the log.

Setup: one anvil node with one CarbonAnchor deployment; two service processes started
at the same moment on an *empty* database and an *empty* shared data directory (so they
race to migrate the schema, create the log state and create the log key), anchoring
with different keys (``DEV_KEYS[0]``, the deployer, and ``DEV_KEYS[1]``, granted
``ANCHORER_ROLE``), both running the anchoring loop every 0.3 s.

Load: signed readings from many devices in batches posted by a pool of threads, half
to each process; every fourth batch is posted to both processes at the same moment,
and some batches are posted again later to the other process.

Then: every reading is stored once, leaf indices are exactly 0..N-1, each stored leaf
hash is the hash of its stored leaf, the root of all stored leaves is the signed tree
head of size N from both processes, every head signed during the run matches the
leaves, consistency proofs from both processes verify, every submission of a reading
got the same receipt from whichever process answered, no head was anchored twice, and
a proof bundle verifies against the chain.
"""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from carbon_protocol import merkle
from carbon_protocol.chain_view import JsonRpcChainView
from carbon_protocol.chain_view import log_key as log_key_of
from carbon_protocol.models import Domain, ProofBundle, Reading, SignedTreeHead
from carbon_protocol.signing import sign_reading, verify_tree_head
from carbon_protocol.suites import PrivateKey, PublicKey, hash_fn
from carbon_protocol.verify import verify_bundle
from ledger_service._internal.chain import ANCHORER_ROLE, ChainClient
from ledger_service._internal.db import anchors, log_state, readings, tree_heads
from ledger_service.devchain import DEV_KEYS, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.chain, pytest.mark.slow,
              pytest.mark.timeout(120)]

PREFIX = "86.1000.1"
LOG_ID = f"{PREFIX}/log.main"
DEVICES = 16
READINGS_PER_DEVICE = 150
BATCH = 100
THREADS = 8


@dataclass
class Service:
    """One ``carbon-ledger serve`` process."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_file: Path

    def log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-3000:]


def start_service(name: str, workdir: Path, env: dict[str, str]) -> Service:
    port = free_port()
    log_file = workdir / f"{name}.log"
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "carbon-ledger"), "serve", "--port", str(port),
             "--anchor-interval", "0.3"],
            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
        )
    return Service(name, f"http://127.0.0.1:{port}", process, log_file)


def wait_until_up(service: Service, deadline: float) -> None:
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(f"{service.name} exited with {service.process.returncode}:\n"
                        f"{service.log_tail()}")
        try:
            if httpx.get(f"{service.url}/v1/log", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{service.name} did not answer in time:\n{service.log_tail()}")


def stop(service: Service) -> None:
    if service.process.poll() is None:
        service.process.terminate()
        try:
            service.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


@dataclass
class Cluster:
    """Two service processes on one database."""

    a: Service
    b: Service
    database_url: str
    api_key: str
    """An admin's key (``carbon-ledger apikey create``) both services accept."""


@pytest.fixture
def cluster(tmp_path: Path, fresh_pg: Any, anvil: Any) -> Iterator[Cluster]:
    contract = ChainClient.deploy(anvil.url, DEV_KEYS[0])
    admin = ChainClient.connect(anvil.url, DEV_KEYS[0], contract, expected_chain_id=anvil.chain_id)
    second = ChainClient.connect(anvil.url, DEV_KEYS[1], contract).account
    admin.grant_role(ANCHORER_ROLE, second)
    database_url = fresh_pg()
    common = {
        "LEDGER_DATABASE_URL": database_url, "LEDGER_DATA_DIR": str(tmp_path / "data"),
        "LEDGER_CHAIN": "rpc", "LEDGER_RPC_URL": anvil.url,
        "LEDGER_CHAIN_ID": str(anvil.chain_id), "LEDGER_CONTRACT_ADDRESS": contract,
        "LEDGER_ANCHOR_EVERY_LEAVES": "1000", "LEDGER_ANCHOR_EVERY_SECONDS": "2",
        "LEDGER_PREFIX": PREFIX, "LEDGER_LOG_ID": LOG_ID,
    }
    services = tuple(
        start_service(name, tmp_path, {**common, "LEDGER_ANCHOR_PRIVATE_KEY": key})
        for name, key in (("a", DEV_KEYS[0]), ("b", DEV_KEYS[1]))
    )
    try:
        deadline = time.monotonic() + 40
        for service in services:
            wait_until_up(service, deadline)
        issued = subprocess.run(
            [str(Path(sys.executable).parent / "carbon-ledger"), "apikey", "create", "--role",
             "admin"], env={**os.environ, **common}, capture_output=True, text=True, timeout=60)
        assert issued.returncode == 0, issued.stderr
        yield Cluster(*services, database_url=database_url, api_key=issued.stdout.strip())
    finally:
        for service in services:
            stop(service)
        for service in services:
            if "Traceback" in service.log_tail():
                sys.stderr.write(f"--- {service.name} log ---\n{service.log_tail()}\n")


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def test_two_processes_one_log(cluster: Cluster, anvil: Any) -> None:
    a, b = cluster.a, cluster.b
    clients = {s.name: httpx.Client(base_url=s.url, timeout=60,
                                    headers={"Authorization": f"Bearer {cluster.api_key}"})
               for s in (a, b)}
    infos = {name: c.get("/v1/log").json() for name, c in clients.items()}
    # Both came up on the same log key (one created the file, the other read it) and
    # the same signing domain.
    assert infos["a"]["log_key"] == infos["b"]["log_key"]
    assert infos["a"]["domain"] == infos["b"]["domain"]
    domain = Domain(**infos["a"]["domain"])
    suite = infos["a"]["suite"]
    log_public = PublicKey.from_hex(suite, infos["a"]["log_key"]["public_key"])
    h = hash_fn(suite)

    # -- registry, through both processes --------------------------------------------
    post(clients["a"], "/v1/enterprises", {"id": f"{PREFIX}/ent.two", "name": "Two Steel"})
    post(clients["b"], "/v1/sites", {"id": f"{PREFIX}/site.two", "enterprise_id":
                                     f"{PREFIX}/ent.two", "name": "Plant", "region": "Liaoning"})
    keys = {}
    for i in range(DEVICES):
        ident = f"{PREFIX}/dev.two{i:03d}"
        client = clients["ab"[i % 2]]
        post(client, "/v1/devices", {"id": ident, "site_id": f"{PREFIX}/site.two",
                                     "quantity": "active_energy", "unit": "kWh",
                                     "serial": ident})
        keys[ident] = PrivateKey.generate("sm")
        post(client, f"/v1/devices/{ident}/keys", {
            "suite": "sm", "public_key": keys[ident].public_key().hex(),
            "valid_from": "2020-01-01T00:00:00Z"})

    # -- load ----------------------------------------------------------------------------
    signed = []
    for seq in range(1, READINGS_PER_DEVICE + 1):
        for ident, key in keys.items():
            signed.append(sign_reading(Reading(
                suite="sm", key_id=key.public_key().key_id, device=ident, seq=seq,
                measured_at=f"2026-01-{1 + seq // 96:02d}T{seq // 4 % 24:02d}:"
                            f"{15 * (seq % 4):02d}:00Z",
                quantity="active_energy", unit="kWh", value=f"{seq % 13}.{seq % 1000:03d}",
                quality="measured", salt=secrets.token_hex(16), domain=domain), key))
    bodies = [{"readings": [s.model_dump(mode="json") for s in signed[i:i + BATCH]]}
              for i in range(0, len(signed), BATCH)]
    n = len(signed)

    # (service, batch) in submission order; a pair posted at the same moment shares a
    # barrier. Pairs are submitted next to each other, so the pool always runs both.
    tasks: list[tuple[str, int, threading.Barrier | None]] = []
    for i in range(len(bodies)):
        if i % 4 == 0:
            together = threading.Barrier(2, timeout=30)
            tasks += [("a", i, together), ("b", i, together)]
        else:
            tasks.append(("ab"[i % 2], i, None))
    tasks += [("ba"[i % 2], i, None) for i in range(1, len(bodies), 7)]  # resent later

    def submit(task: tuple[str, int, threading.Barrier | None]) -> tuple[int, dict[str, Any]]:
        name, i, together = task
        if together is not None:
            together.wait()
        return i, post(clients[name], "/v1/readings/batch", bodies[i])

    start = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(submit, tasks))
    elapsed = time.monotonic() - start
    sys.stderr.write(f"{len(tasks)} batches ({n} distinct readings) in {elapsed:.1f} s\n")

    # -- every submission of a reading got the same receipt, and one was the first -----
    receipts: dict[tuple[int, int], set[str]] = defaultdict(set)
    statuses: dict[tuple[int, int], list[str]] = defaultdict(list)
    for i, result in results:
        assert result["rejected"] == 0, result
        for item in result["items"]:
            receipts[(i, item["index"])].add(str(sorted(item["receipt"].items())))
            statuses[(i, item["index"])].append(item["status"])
    assert len(receipts) == n
    assert all(len(r) == 1 for r in receipts.values())
    assert all(sorted(s)[0] == "accepted" and s.count("accepted") == 1
               for s in statuses.values()), "a reading was accepted twice or never"
    assert sum(r["accepted"] for _, r in results) == n

    # -- the stored log ------------------------------------------------------------------
    engine = create_engine(cluster.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(readings.c.id, readings.c.leaf_index,
                                       readings.c.leaf_hash, readings.c.leaf_data)
                                .order_by(readings.c.leaf_index)).all()
            assert conn.execute(select(log_state.c.tree_size)).scalar_one() == n
            heads = conn.execute(select(tree_heads.c.tree_size, tree_heads.c.signed)).all()
            anchor_rows = conn.execute(select(anchors)).mappings().all()
    finally:
        engine.dispose()
    assert [r.leaf_index for r in rows] == list(range(n))
    assert len({r.id for r in rows}) == n
    leaves = [bytes(r.leaf_hash) for r in rows]
    assert all(merkle.leaf_hash(h, bytes(r.leaf_data)) == leaf for r, leaf in zip(
        rows, leaves, strict=True))
    root = merkle.root_from_leaf_hashes(h, leaves)

    sths = [SignedTreeHead.model_validate(clients[name].get(
        "/v1/log/tree-head", params={"tree_size": n}).json()) for name in "ab"]
    assert sths[0] == sths[1]
    verify_tree_head(sths[0], log_public)
    assert sths[0].tree_head.root_hash == root.hex()

    # Every head either process signed while the other was appending matches the
    # leaves: no process computed a root from a stale cached right edge.
    assert len(heads) >= 2
    for size, text in heads:
        sth = SignedTreeHead.model_validate_json(text)
        verify_tree_head(sth, log_public)
        assert sth.tree_head.root_hash == merkle.root_from_leaf_hashes(
            h, leaves[:size]).hex(), f"signed head of size {size}"

    sizes = sorted({1, 7, 100, n // 3, n // 2, n - 1, n} | {s for s, _ in heads})
    for k, (size1, size2) in enumerate(itertools.pairwise(sizes)):
        proof = clients["ab"[k % 2]].get("/v1/log/proof/consistency",
                                         params={"size1": size1, "size2": size2}).json()
        merkle.verify_consistency(h, size1, size2, [bytes.fromhex(p) for p in proof["proof"]],
                                  merkle.root_from_leaf_hashes(h, leaves[:size1]),
                                  merkle.root_from_leaf_hashes(h, leaves[:size2]))

    # -- anchors -------------------------------------------------------------------------
    live = [r for r in anchor_rows if r["status"] not in ("failed", "replaced")]
    assert len({r["tree_size"] for r in live}) == len(live), "a head was anchored twice"
    deadline = time.monotonic() + 30
    while True:
        final = [x for x in clients["a"].get("/v1/log/anchors").json()
                 if x["status"] == "final" and x["tree_size"] == n]
        if final or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert final, f"no final anchor of size {n}: {clients['a'].get('/v1/log/anchors').text}"
    chain = ChainClient.connect(anvil.url, DEV_KEYS[2], domain.contract)
    for anchor in clients["b"].get("/v1/log/anchors").json():
        if anchor["status"] == "final":
            record = chain.anchor_of(log_key_of(LOG_ID), anchor["tree_size"])
            assert record is not None
            assert record.root == merkle.root_from_leaf_hashes(
                h, leaves[:anchor["tree_size"]])
    bundle = ProofBundle.model_validate(
        clients["b"].get(f"/v1/readings/{rows[n // 2].id}/proof").json())
    verify_bundle(bundle, chain=JsonRpcChainView(anvil.url))
    for client in clients.values():
        client.close()
