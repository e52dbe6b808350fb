"""kill -9 the gateway and the ledger service at every crash point; nothing lost, nothing doubled.

Everything is a real process: the ledger is ``carbon-ledger serve`` (SQLite, its own
data directory), the gateway is the ``carbon-gateway`` command. Crashes are real
``SIGKILL``s raised from inside the processes at named points (``CARBON_CRASH_AT``):

* gateway: ``gateway.before_commit`` (readings signed, sequence numbers taken, outbox
  transaction not committed), ``gateway.after_commit``, ``gateway.before_ack`` (the
  ledger stored a batch, the outbox has not marked it acked);
* service: ``ledger.before_commit`` (batch verified and appended inside the database
  transaction, not committed), ``ledger.after_commit`` (committed, answer not sent).

After the processes are restarted and the commands re-run, the checks are:

1. every measurement is stored in the ledger exactly once, and its stored leaf is
   byte for byte the signed reading in the gateway's outbox (nothing was re-signed);
2. per device the ledger holds sequence numbers ``1..n`` with none missing and none
   repeated (``GET /v1/devices/{id}/sequence`` and the ``readings`` table);
3. the Merkle log verifies: the root recomputed from every stored leaf equals the
   signed tree head (whose signature verifies under the log key), sampled inclusion
   proofs verify, and consistency proofs from the sizes seen right after each crash
   to the final size verify.

Both scenarios run on the ledger's default embedded chain (its anchoring key is kept
in the data directory, so the contract, and with it the signing domain, is the same
after a restart). The service-crash scenario also runs against an anvil node
(``chain`` marker), where the chain outlives the ledger and the final proof bundles
are checked against it as well.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from carbon_protocol.merkle import (
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from carbon_protocol.models import SignedReading, SignedTreeHead
from carbon_protocol.signing import leaf_bytes, verify_reading, verify_tree_head
from carbon_protocol.suites import PublicKey, hash_fn
from ledger_service.devchain import CHAIN_IDS, DEV_KEYS, free_port, start_node

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
KILLED = -signal.SIGKILL
START = "2025-01-06"  # a Monday
PER_DAY = 96
ANVIL_CHAIN_ID = CHAIN_IDS["anvil"]
ANVIL_KEY = DEV_KEYS[0]
GATEWAY_ENTERPRISE = "86.1000.1/ent.demo"  # carbon-gateway's default


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("LEDGER_", "GATEWAY_", "CARBON_"))}


# -- processes ----------------------------------------------------------------------------
@dataclass
class LedgerProcess:
    """``carbon-ledger serve`` on a fixed port and data directory, restartable."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    admin_key: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, crash_at: str | None = None) -> None:
        assert self.proc is None or self.proc.poll() is not None
        env = clean_env() | {"LEDGER_DATA_DIR": str(self.data_dir)} | self.extra_env
        if crash_at:
            env["CARBON_CRASH_AT"] = crash_at
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = self.data_dir / f"serve-{time.monotonic_ns()}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "carbon-ledger"), "serve", "--port", str(self.port)],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"ledger exited with {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"ledger did not answer within 60 s: {self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log else ""

    def wait_killed(self) -> None:
        assert self.proc is not None
        rc = self.proc.wait(timeout=30)
        assert rc == KILLED, f"ledger exited with {rc}, expected SIGKILL: {self.output()}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def issue_key(self, role: str, *enterprises: str) -> str:
        """A new API key from ``carbon-ledger apikey create`` on this ledger's database."""
        env = clean_env() | {"LEDGER_DATA_DIR": str(self.data_dir)} | self.extra_env
        args = [a for e in enterprises for a in ("--enterprise", e)]
        done = subprocess.run([str(BIN / "carbon-ledger"), "apikey", "create", "--role", role,
                               *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def get(self, path: str, **params: Any) -> Any:
        if self.admin_key is None:
            self.admin_key = self.issue_key("admin")
        r = httpx.get(self.url + path, params=params, timeout=30,
                      headers={"Authorization": f"Bearer {self.admin_key}"})
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
        return r.json()


@dataclass
class GatewayCli:
    """Runs ``carbon-gateway`` commands on one data directory, optionally crashing them."""

    data_dir: Path
    ledger_url: str
    api_key: str

    def __call__(self, *args: str, crash_at: str | None = None,
                 expect: int = 0) -> subprocess.CompletedProcess[str]:
        env = clean_env() | {
            "GATEWAY_DATA_DIR": str(self.data_dir),
            "GATEWAY_LEDGER_URL": self.ledger_url,
            "GATEWAY_BATCH_SIZE": "200",
            "GATEWAY_MAX_ATTEMPTS": "3",
            "GATEWAY_BASE_DELAY": "0.05",
            "GATEWAY_MAX_DELAY": "0.1",
            "GATEWAY_TIMEOUT": "20",
            "GATEWAY_API_KEY": self.api_key,
        }
        if crash_at:
            env["CARBON_CRASH_AT"] = crash_at
        done = subprocess.run([str(BIN / "carbon-gateway"), *args], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, (
            f"carbon-gateway {' '.join(args)} exited {done.returncode}, expected {expect}:\n"
            f"{done.stderr}")
        return done

    def status(self) -> dict[str, Any]:
        return json.loads(self("status", "--json", "--limit", "1000").stdout)

    def outbox(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data_dir / 'outbox.db'}?mode=ro", uri=True)


@pytest.fixture
def ledger_proc(tmp_path: Path) -> Iterator[LedgerProcess]:
    led = LedgerProcess(tmp_path / "ledger")
    yield led
    led.stop()


# -- the checks ---------------------------------------------------------------------------
def check_everything_once(led: LedgerProcess, gw: GatewayCli, *, days: int,
                          sizes_seen: list[int]) -> None:
    """Checks 1-3 of the module docstring."""
    status = gw.status()
    devices = [d["device"] for d in status["devices"]]
    expected = days * PER_DAY
    assert status["counts"] == {"pending": 0, "acked": expected * len(devices), "rejected": 0}

    # 1 + 2: exactly once, same bytes, sequence 1..n without gaps or repeats
    with gw.outbox() as ob:
        outbox_rows = {(d, s): (signed, m) for d, s, signed, m in ob.execute(
            "SELECT device, seq, signed, measured_at FROM readings")}
    ledger_db = sqlite3.connect(f"file:{led.data_dir / 'ledger.db'}?mode=ro", uri=True)
    try:
        rows = ledger_db.execute("SELECT device_id, seq, measured_at, leaf_index, leaf_hash, "
                                 "leaf_data FROM readings ORDER BY leaf_index").fetchall()
    finally:
        ledger_db.close()
    assert len(rows) == len(outbox_rows) == expected * len(devices)
    assert [r[3] for r in rows] == list(range(len(rows)))  # leaves 0..n-1, no holes
    assert len({(r[0], r[1]) for r in rows}) == len(rows)
    assert len({(r[0], r[2]) for r in rows}) == len(rows)  # each measurement once
    log = led.get("/v1/log")
    h = hash_fn(log["suite"])
    keys: dict[str, PublicKey] = {}
    for device in devices:
        seq = led.get(f"/v1/devices/{device}/sequence")
        assert (seq["count"], seq["first_seq"], seq["last_seq"], seq["missing"]) == (
            expected, 1, expected, []), seq
        for k in led.get(f"/v1/devices/{device}")["keys"]:
            keys[k["key_id"]] = PublicKey.from_hex(k["suite"], k["public_key"])
    for device_id, seq_no, measured_at, _, stored_leaf, data in rows:
        signed_json, outbox_measured = outbox_rows[(device_id, seq_no)]
        signed = SignedReading.model_validate_json(bytes(data))
        assert signed == SignedReading.model_validate_json(signed_json)
        assert measured_at == outbox_measured
        assert leaf_bytes(signed) == bytes(data)
        assert leaf_hash(h, bytes(data)) == bytes(stored_leaf)
        verify_reading(signed, keys[signed.reading.key_id])

    # 3: the log
    sth = SignedTreeHead.model_validate(led.get("/v1/log/tree-head"))
    head = sth.tree_head
    assert head.tree_size == len(rows)
    log_key = PublicKey.from_hex(log["log_key"]["suite"], log["log_key"]["public_key"])
    verify_tree_head(sth, log_key)
    root = bytes.fromhex(head.root_hash)
    assert root_from_leaf_hashes(h, [bytes(r[4]) for r in rows]) == root
    rng = random.Random(head.tree_size)
    for index in {0, head.tree_size - 1, *rng.sample(range(head.tree_size), 6)}:
        proof = led.get("/v1/log/proof/inclusion", leaf_index=index, tree_size=head.tree_size)
        assert proof["leaf_hash"] == bytes(rows[index][4]).hex()
        verify_inclusion(h, index, head.tree_size, bytes.fromhex(proof["leaf_hash"]),
                         [bytes.fromhex(p) for p in proof["proof"]], root)
    for size1 in sorted(set(sizes_seen)):
        if not 0 < size1 < head.tree_size:
            continue
        old = SignedTreeHead.model_validate(led.get("/v1/log/tree-head", tree_size=size1))
        verify_tree_head(old, log_key)
        proof = led.get("/v1/log/proof/consistency", size1=size1, size2=head.tree_size)
        verify_consistency(h, size1, head.tree_size, [bytes.fromhex(p) for p in proof["proof"]],
                           bytes.fromhex(old.tree_head.root_hash), root)


def tree_size(led: LedgerProcess) -> int:
    return int(led.get("/v1/log")["tree_size"])


# -- scenario 1: the gateway dies at each of its points -------------------------------------
def test_gateway_crashes_lose_and_double_nothing(ledger_proc: LedgerProcess,
                                                 tmp_path: Path) -> None:
    led = ledger_proc
    led.start()
    gw = GatewayCli(tmp_path / "gateway", led.url, led.issue_key("gateway", GATEWAY_ENTERPRISE))
    gw("provision")
    devices = len(gw.status()["devices"])

    # Day 1 commits; day 2 is signed, numbered, then killed before COMMIT: lost whole.
    gw("simulate", "--days", "2", "--start", START, crash_at="gateway.before_commit:2",
       expect=KILLED)
    assert gw.status()["counts"]["pending"] == PER_DAY * devices
    assert {d["next_seq"] for d in gw.status()["devices"]} == {PER_DAY + 1}

    # Re-run: day 1 is a no-op, days 2 and 3 commit, killed right after the second COMMIT.
    gw("simulate", "--days", "3", "--start", START, crash_at="gateway.after_commit:2",
       expect=KILLED)
    assert gw.status()["counts"]["pending"] == 3 * PER_DAY * devices
    done = gw("simulate", "--days", "3", "--start", START)
    assert "recorded 0 new readings" in done.stderr

    # First batch acked; the second is stored by the ledger, then the gateway dies.
    gw("flush", crash_at="gateway.before_ack:2", expect=KILLED)
    assert gw.status()["counts"]["acked"] == 200
    size_after_crash = tree_size(led)
    assert size_after_crash == 400
    done = gw("flush")
    assert f"accepted {3 * PER_DAY * devices - 400}, duplicates 200, rejected 0" in done.stderr

    check_everything_once(led, gw, days=3, sizes_seen=[200, size_after_crash])


# -- scenario 2: the service dies at each of its points -------------------------------------
@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[str]:
    with start_node("anvil", tmp_path / "anvil") as node:
        yield node.url


@pytest.fixture
def chain_env(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[dict[str, str], str | None]]:
    """Ledger settings for the chain backend named by the test's parameter, and the
    JSON-RPC URL a verifier can ask (``None`` for the embedded chain, which has none)."""
    if request.param == "embedded":
        yield {}, None
        return
    url = request.getfixturevalue("anvil")
    from ledger_service._internal.chain import ChainClient

    contract = ChainClient.deploy(url, ANVIL_KEY)
    yield {"LEDGER_CHAIN": "rpc", "LEDGER_RPC_URL": url, "LEDGER_ANCHOR_PRIVATE_KEY": ANVIL_KEY,
           "LEDGER_CONTRACT_ADDRESS": contract, "LEDGER_CHAIN_ID": str(ANVIL_CHAIN_ID)}, url


@pytest.mark.parametrize("chain_env", ["embedded", pytest.param("anvil", marks=pytest.mark.chain)],
                         indirect=True)
def test_service_crashes_lose_and_double_nothing(
    ledger_proc: LedgerProcess, chain_env: tuple[dict[str, str], str | None], tmp_path: Path
) -> None:
    settings, rpc = chain_env
    led = ledger_proc
    led.extra_env = settings | {"LEDGER_ANCHOR_EVERY_SECONDS": "1"}
    led.start(crash_at="ledger.before_commit:2")
    gw = GatewayCli(tmp_path / "gateway", led.url, led.issue_key("gateway", GATEWAY_ENTERPRISE))
    gw("provision")
    gw("simulate", "--days", "2", "--start", START)
    domain = gw.status()["domain"]
    sizes = []

    # The second batch dies inside the ledger's transaction: it must leave no trace.
    done = gw("flush", expect=3)
    assert "ledger_unavailable" in done.stderr
    led.wait_killed()
    assert gw.status()["counts"]["acked"] == 200
    led.start(crash_at="ledger.after_commit:1")
    sizes.append(tree_size(led))
    assert sizes[-1] == 200
    assert led.get("/v1/log")["domain"] == domain  # same deployment after the restart

    # The next batch commits and the ledger dies before answering.
    gw("flush", expect=3)
    led.wait_killed()
    assert gw.status()["counts"]["acked"] == 200
    led.start()
    sizes.append(tree_size(led))
    assert sizes[-1] == 400

    done = gw("flush")
    assert "duplicates 200, rejected 0" in done.stderr
    check_everything_once(led, gw, days=2, sizes_seen=sizes)
    check_offline_proofs(led, gw, rpc)


def check_offline_proofs(led: LedgerProcess, gw: GatewayCli, rpc: str | None) -> None:
    """Once an anchor covers the final log, the first and the last reading each export a
    proof bundle that verifies step by step (on the chain too, when it has an RPC URL)."""
    from carbon_protocol.chain_view import JsonRpcChainView
    from carbon_protocol.models import ProofBundle
    from carbon_protocol.verify import verify_bundle

    size = tree_size(led)
    deadline = time.monotonic() + 30
    while not any(a["tree_size"] == size and a["status"] == "final"
                  for a in led.get("/v1/log/anchors")):
        assert time.monotonic() < deadline, f"no final anchor of size {size}: " + json.dumps(
            led.get("/v1/log/anchors"))
        time.sleep(0.2)
    with gw.outbox() as ob:
        receipts = [json.loads(r) for (r,) in ob.execute(
            "SELECT receipt FROM readings WHERE state='acked'")]
    by_index = {r["leaf_index"]: r for r in receipts}
    log_key_id = led.get("/v1/log")["log_key"]["key_id"]
    chain = JsonRpcChainView(rpc) if rpc else None
    for index in (0, size - 1):
        reading_id = by_index[index]["reading_id"]
        bundle = ProofBundle.model_validate(led.get(f"/v1/readings/{reading_id}/proof"))
        assert bundle.leaf_index == index
        report = verify_bundle(bundle, chain=chain, trusted_log_keys=[log_key_id])
        assert report.chain_checked == (rpc is not None)
