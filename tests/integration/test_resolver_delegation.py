"""Delegation across real processes: a root node and a secondary node (二级节点), each
``python -m identifier_resolver serve`` on a free port with its own database, key and
in-process chain. The client resolves from the root, follows the signed referral to the
secondary, verifies every answer (and refuses a tampered one), sees a deactivated
identifier's history, walks custody across both nodes, and stops at loops and hop
limits. Neither node ever contacts the other: only the client follows URLs, and only
URLs from verified delegation records."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from carbon_protocol.suites import PrivateKey
from identifier_resolver import records as R
from identifier_resolver.client import ResolverClient
from identifier_resolver.custody import reading_count
from identifier_resolver.errors import (
    DeactivatedError,
    NotFoundError,
    ReferralError,
    VerificationError,
)
from identifier_resolver.models import Answer, TrustRoot
from identifier_resolver.verify import verify_answer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
SECONDARY_PREFIX = "86.2000.1"
REGULATOR_PREFIX = "86.9000"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    url: str
    process: subprocess.Popen[bytes]
    node_key: PrivateKey
    log_id: str
    log: Path


def _start(data_dir: Path, *, root: bool, trust_key: PrivateKey, suite: str,
           log_prefix: str) -> Node:
    data_dir.mkdir(parents=True)
    node_key = PrivateKey.generate(suite)  # type: ignore[arg-type]
    key_file = data_dir / "node_key.pem"
    key_file.write_bytes(node_key.to_pem())
    key_file.chmod(0o600)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RESOLVER_DATA_DIR": str(data_dir), "RESOLVER_ROOT": str(root).lower(),
           "RESOLVER_TRUST_ROOT_KEY": f"{trust_key.suite}:{trust_key.public_key().hex()}",
           "RESOLVER_LOG_SUITE": suite, "RESOLVER_LOG_PREFIX": log_prefix,
           "RESOLVER_NODE_ID": "root" if root else "secondary", "RESOLVER_PUBLIC_URL": url,
           "RESOLVER_ANCHOR_EVERY_SECONDS": "0.2", "PYTHONPATH": str(ROOT)}
    log = data_dir / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "identifier_resolver", "serve", "--port", str(port),
         "--anchor-interval", "0.2"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"node did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return Node(url, process, node_key, f"{log_prefix}/log.resolver", log)


@dataclass
class Federation:
    root: Node
    secondary: Node
    root_owner: PrivateKey
    enterprise: PrivateKey
    trust: TrustRoot


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    base = tmp_path_factory.mktemp("federation")
    root_owner = PrivateKey.generate("sm")
    enterprise = PrivateKey.generate("intl")
    root = _start(base / "root", root=True, trust_key=root_owner, suite="sm", log_prefix="0")
    secondary = _start(base / "secondary", root=False, trust_key=root_owner, suite="intl",
                       log_prefix=SECONDARY_PREFIX)
    try:
        # The trust root is pinned from what we know out of band (the keys we made),
        # then compared with what the root serves.
        trust = TrustRoot(
            owner_keys=[_info(root_owner)], log_id="0/log.resolver",
            log_key=_info(root.node_key), url=root.url)
        served = TrustRoot.model_validate(httpx.get(root.url + "/trust").json())
        assert served == trust
        yield Federation(root, secondary, root_owner, enterprise, trust)
    finally:
        for node in (root, secondary):
            node.process.terminate()
        for node in (root, secondary):
            try:
                node.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node.process.kill()


def _info(key: PrivateKey) -> Any:
    from carbon_protocol.models import PublicKeyInfo

    pub = key.public_key()
    return PublicKeyInfo(suite=pub.suite, public_key=pub.hex(), key_id=pub.key_id)


@pytest.fixture(scope="module")
def world(federation: Federation) -> dict[str, Any]:
    f = federation
    client = ResolverClient(f.trust)
    # 1. The root owner delegates 86.2000.1 to the secondary (the enterprise's own key
    #    signs under it) and 86.9000 to the root itself (a regulator's prefix).
    to_secondary = R.delegation(
        "0", SECONDARY_PREFIX, owner_keys=[f.enterprise.public_key()],
        node_key=f.secondary.node_key.public_key(), url=f.secondary.url,
        log_id=f.secondary.log_id, node_id="secondary", key=f.root_owner)
    to_root = R.delegation(
        "0", REGULATOR_PREFIX, owner_keys=[f.root_owner.public_key()],
        node_key=f.root.node_key.public_key(), url=f.root.url, log_id=f.root.log_id,
        node_id="root", key=f.root_owner)
    # A delegation whose URL is the root itself but which the root never installs:
    # following it comes straight back to the root (a loop).
    loop = R.delegation(
        "0", "86.3000", owner_keys=[f.root_owner.public_key()],
        node_key=f.root.node_key.public_key(), url=f.root.url, log_id=f.root.log_id,
        node_id="root", key=f.root_owner)
    client.submit([to_secondary, to_root, loop], url=f.root.url)
    assert client.install_authority(f.secondary.url, [to_secondary]) == SECONDARY_PREFIX
    assert client.install_authority(f.root.url, [to_root]) == REGULATOR_PREFIX

    # 2. The enterprise registers its things on the secondary, the regulator a report
    #    on the root that cites the enterprise's inventory.
    p, e = SECONDARY_PREFIX, f.enterprise
    ent, site, dev = f"{p}/ent.plant", f"{p}/site.1", f"{p}/dev.m1"
    ranges = [f"{p}/rr.dev.m1.{a}-{a + 100}" for a in (0, 100, 200)]
    inv = f"{p}/inv.2026-01"
    records = [
        R.new_record(ent, "enterprise", ent, e, data={"name": "Plant"}),
        R.new_record(site, "site", ent, e, links=[("part_of", ent)]),
        R.new_record(dev, "device", ent, e, links=[("part_of", site)]),
        *(R.new_record(r, "reading_range", ent, e, links=[("measured_by", dev)],
                       data={"count": 96}) for r in ranges),
        R.new_record(inv, "inventory", ent, e, links=[("computed_from", r) for r in ranges]),
    ]
    assert client.locate(dev) == f.secondary.url
    client.submit(records)  # located through the root's referral
    report = f"{REGULATOR_PREFIX}/rep.plant.2026-01"
    client.submit([R.new_record(report, "report", f"{REGULATOR_PREFIX}/reg.1", f.root_owner,
                                links=[("summarises", inv)], data={"period": "2026-01"})])
    old = R.new_record(f"{p}/dev.old", "device", ent, e, data={"serial": "OLD-1"})
    client.submit([old, R.deactivation(old, e, "replaced by dev.m1")])
    return {"client": client, "dev": dev, "report": report, "inv": inv}


def _wait_anchored(client: ResolverClient, ident: str) -> Any:
    deadline = time.monotonic() + 30
    while True:
        verified = client.resolve(ident)
        if verified.anchored or time.monotonic() > deadline:
            return verified
        time.sleep(0.2)


def test_resolution_follows_the_referral(federation: Federation, world: dict[str, Any]) -> None:
    client = world["client"]
    verified = _wait_anchored(client, world["dev"])
    assert verified.hops == [federation.root.url, federation.secondary.url]
    assert verified.authority == SECONDARY_PREFIX and verified.anchored
    assert verified.answer.node_id == "secondary"
    assert verified.answer.proof.log_id == f"{SECONDARY_PREFIX}/log.resolver"
    strict = ResolverClient(federation.trust, require_anchor=True)
    assert strict.resolve(world["dev"]).passed[-1] == "anchor"
    # The root answers its own records directly (one hop).
    assert client.resolve(world["report"]).hops == [federation.root.url]


def test_referral_answer_is_proven_by_the_root(federation: Federation,
                                               world: dict[str, Any]) -> None:
    r = httpx.get(f"{federation.root.url}/resolve/{world['dev']}")
    answer = Answer.model_validate_json(r.content)
    assert r.status_code == 200 and answer.kind == "referral"
    assert answer.record.record.data["url"] == federation.secondary.url
    verify_answer(answer, federation.trust, query=world["dev"])


def test_tampered_answer_fails(federation: Federation, world: dict[str, Any]) -> None:
    doc = httpx.get(f"{federation.secondary.url}/resolve/{world['dev']}").json()
    good = Answer.model_validate(doc)
    verify_answer(good, federation.trust, query=world["dev"])
    forged = copy.deepcopy(doc)
    forged["record"]["record"]["links"] = []
    with pytest.raises(VerificationError, match=r"step 2 \(record signature\)"):
        verify_answer(Answer.model_validate(forged), federation.trust, query=world["dev"])
    forged = copy.deepcopy(doc)
    first = forged["proof"]["inclusion_proof"][0]
    forged["proof"]["inclusion_proof"][0] = ("1" if first[0] == "0" else "0") + first[1:]
    with pytest.raises(VerificationError, match=r"step 7 \(inclusion\)"):
        verify_answer(Answer.model_validate(forged), federation.trust, query=world["dev"])


def test_deactivated_returns_history(federation: Federation, world: dict[str, Any]) -> None:
    ident = f"{SECONDARY_PREFIX}/dev.old"
    r = httpx.get(f"{federation.secondary.url}/resolve/{ident}")
    assert r.status_code == 410 and r.json()["code"] == "deactivated"
    with pytest.raises(DeactivatedError, match="replaced by dev.m1") as info:
        world["client"].resolve(ident)
    verified = info.value.answer
    assert [h.record.data["serial"] for h in verified.answer.history] == ["OLD-1"]
    assert "history" in verified.passed


def test_custody_walk_across_nodes(federation: Federation, world: dict[str, Any]) -> None:
    client = world["client"]
    down = client.custody(world["report"], "down", 3, proofs=True)
    by_id = {n.id: n for n in down.nodes}
    assert by_id[world["inv"]].state == "present" and by_id[world["inv"]].depth == 1
    assert reading_count(down) == 3 * 96
    up = client.custody(world["dev"], "up", 3)
    assert {f"{SECONDARY_PREFIX}/ent.plant", f"{SECONDARY_PREFIX}/site.1"} <= {
        n.id for n in up.nodes}
    # Links are kept by the node of the record that declares them: the secondary knows
    # its inventory uses the range, not that a report on the root cites the inventory.
    from_range = client.custody(f"{SECONDARY_PREFIX}/rr.dev.m1.0-100", "up", 3)
    assert world["inv"] in {n.id for n in from_range.nodes}


def test_unknown_prefix_loop_and_hop_limit(federation: Federation,
                                           world: dict[str, Any]) -> None:
    client = world["client"]
    with pytest.raises(NotFoundError, match="no prefix known"):
        client.resolve("77.1/x")
    with pytest.raises(ReferralError, match="loop"):
        client.resolve("86.3000/x")
    no_hops = ResolverClient(federation.trust, max_hops=0)
    with pytest.raises(ReferralError, match="more than 0 referrals"):
        no_hops.resolve(world["dev"])
    # Bad input to either process never yields a 5xx.
    for node in (federation.root, federation.secondary):
        for path in ("/resolve/%00", "/resolve/..%2F..%2Fetc", "/custody/x?depth=-3",
                     "/resolve/86.1/" + "a" * 5000):
            assert httpx.get(node.url + path).status_code in (200, 400, 404, 410)
