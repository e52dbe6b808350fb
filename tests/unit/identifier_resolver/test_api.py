"""Over HTTP: one fixed error vocabulary, never a 5xx on bad input (fuzzed), writes refused
with the right status, device events, node endpoints."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from resolver_support import P, World

from carbon_protocol.suites import PrivateKey
from identifier_resolver import records as R
from identifier_resolver.api import create_app
from identifier_resolver.models import Answer, CustodyGraph, TrustRoot
from identifier_resolver.resolver import Resolver
from identifier_resolver.verify import verify_answer

DEV = f"{P}/dev.m1"


@pytest.fixture
def http(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.resolver)) as client:
        yield client


def _post(http: TestClient, *records: Any) -> Any:
    return http.post("/records", json={"records": [json.loads(r.model_dump_json())
                                                   for r in records]})


def test_resolve_ok_and_verifiable(http: TestClient, trust: TrustRoot) -> None:
    r = http.get(f"/resolve/{DEV}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    answer = Answer.model_validate_json(r.content)
    verify_answer(answer, trust, query=DEV)
    assert http.get(f"/resolve/{DEV}").content == r.content  # cached bytes, same answer


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/resolve/not-an-identifier", 400, "invalid_identifier"),
    ("/resolve/86.1000.1/has space", 400, "invalid_identifier"),
    (f"/resolve/{P}/dev.ghost", 404, "not_found"),
    ("/resolve/77.7/x", 404, "not_found"),
    ("/resolve/", 400, "invalid_identifier"),
    ("/custody/bad", 400, "invalid_identifier"),
    (f"/custody/{P}/dev.ghost", 404, "not_found"),
    (f"/custody/{DEV}?direction=sideways", 400, "invalid_request"),
    (f"/custody/{DEV}?depth=abc", 400, "invalid_request"),
    (f"/custody/{DEV}?depth=-1", 400, "invalid_request"),
    (f"/custody/{DEV}?depth=257", 400, "invalid_request"),
    (f"/custody/{DEV}?depth=100", 400, "invalid_request"),
    ("/nowhere", 404, "not_found"),
])
def test_error_vocabulary(http: TestClient, path: str, status: int, code: str) -> None:
    r = http.get(path)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert r.json()["message"]


def test_deactivated_is_410_with_history(http: TestClient, world: World,
                                         trust: TrustRoot) -> None:
    current = world.records[DEV]
    assert _post(http, R.deactivation(current, world.key, "meter removed")).status_code == 201
    for path in (f"/resolve/{DEV}", f"/custody/{DEV}?direction=up"):
        r = http.get(path)
        assert r.status_code == 410 and r.json()["code"] == "deactivated"
        answer = Answer.model_validate(r.json()["answer"])
        assert [h.record.version for h in answer.history] == [1]
        assert answer.record.record.reason == "meter removed"
        verify_answer(answer, trust, query=DEV)


def test_custody_over_http(http: TestClient) -> None:
    r = http.get(f"/custody/{P}/rep.2026-01", params={"direction": "down", "depth": 2})
    assert r.status_code == 200
    graph = CustodyGraph.model_validate_json(r.content)
    assert sum(n.type == "reading_range" for n in graph.nodes) == 6
    up = CustodyGraph.model_validate_json(http.get(f"/custody/{DEV}?direction=up").content)
    assert f"{P}/ent.steel" in {n.id for n in up.nodes}


def test_write_refusals(http: TestClient, world: World, owner: PrivateKey) -> None:
    stranger = PrivateKey.generate("intl")
    cases = [
        (_post(http, R.new_record(f"{P}/ent.x", "enterprise", f"{P}/ent.x", stranger)),
         403, "bad_signature"),
        (_post(http, R.new_record(DEV, "device", f"{P}/ent.steel", owner)), 409, "conflict"),
        (_post(http, R.new_record("86.9/ent.x", "enterprise", "86.9/ent.x", owner)),
         421, "not_authoritative"),
        (http.post("/records", content=b"{not json",
                   headers={"content-type": "application/json"}), 400, "invalid_request"),
        (http.post("/records", json={"records": []}), 400, "invalid_request"),
        (http.post("/records", content=b"x" * (17 * 1024 * 1024),
                   headers={"content-type": "application/json"}), 413, "body_too_large"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.text


def test_maintenance_and_calibration_endpoints(http: TestClient, world: World) -> None:
    key = world.key
    m = R.maintenance(f"{P}/mnt.2", DEV, f"{P}/ent.steel", key,
                      performed_at="2026-02-01T09:00:00Z", kind="CT replaced",
                      description="current transformer replaced after fault")
    r = http.post(f"/devices/{DEV}/maintenance", json=json.loads(m.model_dump_json()))
    assert r.status_code == 201 and r.json()["id"] == f"{P}/mnt.2"
    c = R.calibration(f"{P}/cal.2", DEV, f"{P}/ent.steel", key,
                      calibrated_at="2026-02-02T00:00:00Z", laboratory="NIM",
                      certificate="CAL-2026-7")
    assert http.post(f"/devices/{DEV}/calibrations",
                     json=json.loads(c.model_dump_json())).status_code == 201
    down = CustodyGraph.model_validate_json(http.get(f"/custody/{DEV}?depth=1").content)
    assert {f"{P}/mnt.2", f"{P}/cal.2"} <= {n.id for n in down.nodes}
    wrong_type = http.post(f"/devices/{DEV}/calibrations", json=json.loads(m.model_dump_json()))
    assert wrong_type.status_code == 400
    other = R.maintenance(f"{P}/mnt.3", f"{P}/dev.ghost", f"{P}/ent.steel", key,
                          performed_at="2026-02-01T09:00:00Z", kind="x", description="x")
    r = http.post(f"/devices/{P}/dev.ghost/maintenance", json=json.loads(other.model_dump_json()))
    assert r.status_code == 404
    forged = R.maintenance(f"{P}/mnt.4", DEV, f"{P}/ent.steel", PrivateKey.generate("intl"),
                           performed_at="2026-02-01T09:00:00Z", kind="x", description="x")
    r = http.post(f"/devices/{DEV}/maintenance", json=json.loads(forged.model_dump_json()))
    assert (r.status_code, r.json()["code"]) == (403, "bad_signature")


def test_node_endpoints(http: TestClient, root: Resolver, trust: TrustRoot) -> None:
    info = http.get("/node").json()
    assert info["root"] and P in info["prefixes"]
    pinned = TrustRoot.model_validate(http.get("/trust").json())
    assert pinned.owner_keys == trust.owner_keys and pinned.log_key == trust.log_key
    head = http.get("/log/tree-head").json()
    size = head["signed_tree_head"]["tree_head"]["tree_size"]
    assert size == root.tree_size()
    proof = http.get("/log/consistency", params={"size1": 1, "size2": size}).json()
    assert proof["proof"]
    assert http.get("/log/consistency", params={"size1": 5, "size2": 2}).status_code == 400
    assert http.get("/health").json()["status"] == "ok"


def test_install_authority_over_http(node_factory: Callable[..., Resolver], root: Resolver,
                                     owner: PrivateKey) -> None:
    node = node_factory(trust_key=owner, root=False, log_prefix="86.5000")
    d = R.delegation("0", "86.5000", owner_keys=[owner.public_key()],
                     node_key=node.node_key.public_key(), url="http://n.test",
                     log_id=node.settings.log_id, node_id=node.node_id, key=owner)
    with TestClient(create_app(node)) as client:
        assert client.get("/trust").status_code == 404
        body = {"delegations": [json.loads(d.model_dump_json())]}
        assert client.post("/authority", json=body).json() == {"prefix": "86.5000"}
        forged = {"delegations": [json.loads(R.delegation(
            "0", "86.5000", owner_keys=[owner.public_key()],
            node_key=node.node_key.public_key(), url="http://n.test",
            log_id=node.settings.log_id, node_id=node.node_id,
            key=PrivateKey.generate("intl")).model_dump_json())]}
        assert client.post("/authority", json=forged).status_code == 403


ALLOWED = {200, 400, 404, 410}
_id_like = st.from_regex(r"\A[0-9.]{0,12}/?[A-Za-z0-9._:\-/ %]{0,40}\Z")


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=300), _id_like,
                      st.sampled_from([DEV, f"{P}/rep.2026-01", f"{P}/ent.steel", "0/na." + P])),
       direction=st.one_of(st.sampled_from(["up", "down"]), st.text(max_size=10)),
       depth=st.one_of(st.integers(-5, 300).map(str), st.text(max_size=6)))
def test_fuzz_resolve_and_custody_never_5xx(http: TestClient, text: str, direction: str,
                                            depth: str) -> None:
    path = quote(text, safe="/:")
    r = http.get(f"/resolve/{path}")
    assert r.status_code in ALLOWED, (text, r.status_code, r.text)
    assert "code" in r.json() or r.status_code == 200
    r = http.get(f"/custody/{path}", params={"direction": direction, "depth": depth})
    assert r.status_code in ALLOWED, (text, direction, depth, r.status_code, r.text)
    r = http.get(f"/resolve/{quote(text, safe='')}")
    assert r.status_code in ALLOWED, (text, r.status_code, r.text)


def test_mounted_in_process_under_another_app(world: World, trust: TrustRoot) -> None:
    from fastapi import FastAPI

    host = FastAPI()

    @host.get("/health")
    def health() -> dict[str, str]:
        return {"status": "host"}

    host.mount("/resolver", create_app(world.resolver))
    with TestClient(host) as client:
        for _ in range(2):  # uncached, then cached
            r = client.get(f"/resolver/resolve/{DEV}")
            assert r.status_code == 200
            verify_answer(Answer.model_validate_json(r.content), trust, query=DEV)
        assert client.get("/resolver/resolve/bad").json()["code"] == "invalid_identifier"
        assert client.get(f"/resolver/custody/{DEV}?direction=up").status_code == 200
        assert client.get("/health").json() == {"status": "host"}


def test_standalone_app_tags_answers_and_revalidates(world: World, trust: TrustRoot) -> None:
    from identifier_resolver.api import create_asgi

    with TestClient(create_asgi(world.resolver)) as client:
        first = client.get(f"/resolve/{DEV}")
        tag = first.headers["etag"]
        assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
        verify_answer(Answer.model_validate_json(first.content), trust, query=DEV)
        again = client.get(f"/resolve/{DEV}", headers={"if-none-match": tag})
        assert again.status_code == 304 and again.content == b""
        assert client.get("/resolve/nope").status_code == 400  # vocabulary unchanged
        assert client.get("/node").status_code == 200  # everything else: the FastAPI app
        # A new version changes the answer, hence its tag: the old one no longer matches.
        current = world.records[DEV]
        world.add(R.next_version(current, world.key, data={"note": "resealed"}))
        changed = client.get(f"/resolve/{DEV}", headers={"if-none-match": tag})
        assert changed.status_code == 200 and changed.headers["etag"] != tag
