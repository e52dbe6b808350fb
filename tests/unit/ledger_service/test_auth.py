"""API keys and the important access rules, case by case: a gateway posts readings only
for its enterprise's devices, revoked and forged keys are 401, keys are stored hashed,
the admin routes and the CLI manage keys, the gateway sends its configured key, bank and
verifier keys name their organisation (party)."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from carbon_protocol.suites import PrivateKey
from ledger_service import registry
from ledger_service._cli import app as cli
from ledger_service._internal.db import api_keys, make_engine
from ledger_service.api import create_app
from ledger_service.auth import (
    KeyCreate,
    Role,
    UnauthenticatedError,
    authenticate,
    create_key,
    list_keys,
)
from ledger_service.models import DeviceCreate, DeviceKeyCreate, EnterpriseCreate, SiteCreate
from node_gateway.settings import GatewaySettings
from node_gateway.uploader import HttpTransport

A = "86.1000.1/ent.test"
B = "86.1000.1/ent.other"
B_SITE = "86.1000.1/site.other"
BANK = "86.1000.1/bank.icbc-ln"
VERIFIER = "86.1000.1/vfr.acme"


@pytest.fixture
def other(ledger: Any, device_factory: Any) -> Any:
    """Enterprise B with a site and a device registered with a key (signing like A's)."""
    ledger.call(registry.create_enterprise, EnterpriseCreate(id=B, name="Other Co."))
    ledger.call(registry.create_site, SiteCreate(id=B_SITE, enterprise_id=B, name="Plant B",
                                                 region="Hebei"))
    device = device_factory(ledger)  # A's; its id and key are replaced by B's below
    device.id, device.key = "86.1000.1/dev.of-b", PrivateKey.generate("sm")
    ledger.call(registry.create_device, DeviceCreate(id=device.id, site_id=B_SITE, serial="b",
                                                     quantity="active_energy", unit="kWh"))
    ledger.call(registry.add_device_key, device.id, DeviceKeyCreate(
        suite="sm", public_key=device.key.public_key().hex(), valid_from="2026-01-01T00:00:00Z"))
    return device


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def test_gateway_posts_readings_only_for_its_enterprises_devices(
        ledger: Any, client_as: Any, make_device: Any, other: Any) -> None:
    gateway = client_as("gateway")  # scoped to A
    own = make_device()
    assert gateway.post("/v1/readings", json=own.signed().model_dump(mode="json")
                        ).status_code == 201
    size = ledger.tree_size()
    body = _problem(gateway.post("/v1/readings", json=other.signed().model_dump(mode="json")),
                    403, "forbidden")
    assert body["details"]["identifiers"] == [other.id]
    # One foreign reading in a batch refuses the whole batch: nothing of it is stored.
    batch = {"readings": [own.signed().model_dump(mode="json"),
                          other.signed().model_dump(mode="json")]}
    _problem(gateway.post("/v1/readings/batch", json=batch), 403, "forbidden")
    assert ledger.tree_size() == size
    # An admin may post B's reading: the refusal was about the key, not the reading.
    assert client_as("admin").post("/v1/readings", json=other.signed().model_dump(mode="json")
                                    ).status_code == 201


def test_unknown_ids_are_refused_to_scoped_keys_like_foreign_ones(
        client_as: Any) -> None:
    unknown = "/v1/devices/86.1000.1/dev.nobody"
    _problem(client_as("enterprise").get(unknown), 403, "forbidden")
    _problem(client_as("regulator").get(unknown), 404, "not_found")


def test_enterprise_reads_its_own_records_not_anothers(client_as: Any, other: Any) -> None:
    enterprise = client_as("enterprise")
    assert enterprise.get(f"/v1/enterprises/{A}").json()["id"] == A
    _problem(enterprise.get(f"/v1/enterprises/{B}"), 403, "forbidden")
    _problem(enterprise.get(f"/v1/devices/{other.id}"), 403, "forbidden")
    # Registering a site under another enterprise is refused before anything is written.
    site = {"id": "86.1000.1/site.sneaky", "enterprise_id": B, "name": "x", "region": "y"}
    _problem(enterprise.post("/v1/sites", json=site), 403, "forbidden")
    assert client_as("admin").post("/v1/sites", json=site).status_code == 201


def test_verifier_sees_only_the_enterprises_it_is_engaged_by(
        client_as: Any, make_device: Any, other: Any) -> None:
    own = make_device()
    engaged_by_b = client_as("verifier", (B,))
    assert engaged_by_b.get(f"/v1/devices/{other.id}").status_code == 200
    _problem(engaged_by_b.get(f"/v1/devices/{own.id}"), 403, "forbidden")
    assert client_as("verifier", ()).get(f"/v1/devices/{own.id}").status_code == 200


def test_roles_outside_the_policy_are_403_and_no_key_is_401(client_as: Any,
                                                            make_device: Any) -> None:
    device = make_device()
    body = _problem(client_as("bank").get(f"/v1/devices/{device.id}"), 403, "forbidden")
    assert body["details"]["role"] == "bank"
    anonymous = client_as(None).get(f"/v1/devices/{device.id}")
    _problem(anonymous, 401, "unauthenticated")
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="carbon-ledger"'
    # Public: the log's tree head and proofs, health.
    assert client_as(None).get("/v1/log").status_code == 200
    assert client_as(None).get("/health").status_code in (200, 503)


def test_unauthenticated_before_the_body_is_judged(client_as: Any) -> None:
    """A caller without a key learns nothing about the schema: 401, not 422."""
    _problem(client_as(None).post("/v1/readings", json={"nonsense": True}), 401,
             "unauthenticated")


def test_admin_manages_keys_over_http(ledger: Any, client_as: Any,
                                      caplog: pytest.LogCaptureFixture) -> None:
    admin = client_as("admin")
    with caplog.at_level(logging.INFO, logger="ledger_service.access"):
        issued = admin.post("/v1/auth/keys", json={"role": "gateway", "enterprises": [A],
                                                   "label": "edge 7"})
    assert issued.status_code == 201
    assert f"API key {issued.json()['key_id']} (gateway {A}, party -) issued by key" \
        in caplog.text
    assert issued.json()["api_key"] not in caplog.text
    key = issued.json()["api_key"]
    gateway = create_app(ledger)
    from fastapi.testclient import TestClient

    with TestClient(gateway, headers={"Authorization": f"Bearer {key}"}) as http:
        me = http.get("/v1/auth/whoami").json()
        assert me == {"key_id": issued.json()["key_id"], "role": "gateway", "enterprises": [A],
                      "party": None}
        listed = admin.get("/v1/auth/keys").json()
        mine = next(k for k in listed if k["key_id"] == me["key_id"])
        assert "api_key" not in mine and mine["label"] == "edge 7"
        assert all(key not in str(k) for k in listed)
        revoked = admin.post(f"/v1/auth/keys/{me['key_id']}/revoke")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        _problem(http.get("/v1/auth/whoami"), 401, "unauthenticated")
    _problem(admin.post(f"/v1/auth/keys/{me['key_id']}/revoke"), 409, "conflict")
    _problem(admin.post("/v1/auth/keys/00aa00aa00aa00aa/revoke"), 404, "not_found")
    # Scope must fit the role; only an admin issues keys.
    _problem(admin.post("/v1/auth/keys", json={"role": "gateway"}), 422, "invalid_input")
    _problem(admin.post("/v1/auth/keys", json={"role": "bank", "enterprises": [A],
                                                "party": BANK}), 422, "invalid_input")
    _problem(admin.post("/v1/auth/keys", json={"role": "root"}), 422, "invalid_input")
    _problem(client_as("regulator").post("/v1/auth/keys", json={"role": "admin"}), 403,
             "forbidden")


# The second key's secret holds "_" early, as about half of generated secrets do.
@pytest.mark.parametrize("given", [None, "clk_00112233445566ff_Z_" + "k" * 41])
def test_keys_are_stored_as_sha256_and_checked_whole(ledger: Any, given: str | None) -> None:
    with ledger.engine.begin() as conn:
        issued = create_key(conn, KeyCreate(role=Role.BANK, party=BANK), key=given)
        row = conn.execute(select(api_keys).where(api_keys.c.key_id == issued.key_id)).one()
    assert bytes(row.key_hash) == hashlib.sha256(issued.api_key.encode()).digest()
    secret = issued.api_key.split("_", 2)[2]  # base64url: the secret may hold "_" itself
    assert len(secret) == 43 and secret not in str(tuple(row))
    with ledger.reader.connect() as conn:
        assert authenticate(conn, f"Bearer {issued.api_key}").role is Role.BANK
        tampered = issued.api_key[:-1] + ("A" if issued.api_key[-1] != "A" else "B")
        for header in (None, "", f"Bearer {tampered}", f"Token {issued.api_key}",
                       f"Bearer clk_{'0' * 16}_{secret}"):
            with pytest.raises(UnauthenticatedError):
                authenticate(conn, header)


def test_cli_creates_lists_and_revokes_keys(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("LEDGER_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("LEDGER_CHAIN", "rpc")  # incomplete chain settings: keys need none
    runner = CliRunner()
    created = runner.invoke(cli, ["apikey", "create", "--role", "verifier", "--enterprise", A,
                                  "--enterprise", B, "--label", "auditor",
                                  "--party", VERIFIER])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    engine = make_engine(f"sqlite:///{tmp_path / 'cli' / 'ledger.db'}")
    try:
        with engine.connect() as conn:
            principal = authenticate(conn, f"Bearer {key}")
            assert principal.role is Role.VERIFIER and principal.enterprises == {A, B}
            assert principal.party == VERIFIER
            assert [k.label for k in list_keys(conn)] == ["auditor"]
        listed = runner.invoke(cli, ["apikey", "list"])
        assert principal.key_id in listed.stdout and key not in listed.stdout
        assert runner.invoke(cli, ["apikey", "revoke", principal.key_id]).exit_code == 0
        assert runner.invoke(cli, ["apikey", "revoke", principal.key_id]).exit_code == 1
        with engine.connect() as conn, pytest.raises(UnauthenticatedError):
            authenticate(conn, f"Bearer {key}")
        refused = runner.invoke(cli, ["apikey", "create", "--role", "gateway"])
        assert refused.exit_code == 2
        no_party = runner.invoke(cli, ["apikey", "create", "--role", "bank"])
        assert no_party.exit_code == 2 and "names its party" in no_party.output
        # A deployment's own key (GATEWAY_API_KEY): generated, then registered by hash.
        given = runner.invoke(cli, ["apikey", "generate"]).stdout.strip()
        register = ["apikey", "create", "--role", "gateway", "--enterprise", A, "--stdin"]
        assert runner.invoke(cli, register, input=given + "\n").exit_code == 0
        with engine.connect() as conn:
            assert authenticate(conn, f"Bearer {given}").enterprises == {A}
        assert runner.invoke(cli, register, input=given + "\n").exit_code == 1  # registered
        assert runner.invoke(cli, register, input="clk_short\n").exit_code == 1
    finally:
        engine.dispose()


def test_gateway_sends_its_configured_key(ledger: Any, monkeypatch: Any,
                                          api_key_factory: Any) -> None:
    key = api_key_factory(ledger, "gateway", (A,))
    monkeypatch.setenv("GATEWAY_API_KEY", key)
    settings = GatewaySettings()
    assert settings.api_key is not None and key not in repr(settings)
    transport = HttpTransport.for_app(create_app(ledger),
                                      api_key=settings.api_key.get_secret_value())
    answer = transport.request("GET", "/v1/auth/whoami")
    assert answer.status == 200 and answer.body["role"] == "gateway"
    assert HttpTransport.for_app(create_app(ledger)).request(
        "GET", "/v1/auth/whoami").status == 401


@pytest.mark.parametrize(("body", "problem"), [
    ({"role": "bank"}, "a bank key names its party"),
    ({"role": "verifier", "enterprises": [A]}, "a verifier key names its party"),
    ({"role": "enterprise", "enterprises": [A], "party": BANK}, "names no party"),
    ({"role": "gateway", "enterprises": [A], "party": BANK}, "names no party"),
    ({"role": "buyer", "enterprises": [A], "party": BANK}, "names no party"),
    ({"role": "association", "party": BANK}, "names no party"),
    ({"role": "bank", "party": "not an identifier"}, "party"),
])
def test_a_key_names_a_party_exactly_where_its_role_needs_one(
        client_as: Any, body: dict[str, Any], problem: str) -> None:
    refused = _problem(client_as("admin").post("/v1/auth/keys", json=body), 422,
                       "invalid_input")
    assert problem in str(refused)


def test_bank_verifier_regulator_and_admin_keys_carry_their_party(
        ledger: Any, client_as: Any) -> None:
    admin = client_as("admin")
    from fastapi.testclient import TestClient

    for body in ({"role": "bank", "party": BANK}, {"role": "verifier", "party": VERIFIER},
                 {"role": "regulator", "party": "86.1000.1/gov.mee"}, {"role": "regulator"},
                 {"role": "admin", "party": "86.1000.1/op.ledger"}):
        issued = admin.post("/v1/auth/keys", json=body)
        assert issued.status_code == 201, issued.text
        assert issued.json()["party"] == body.get("party")
        with TestClient(create_app(ledger),
                        headers={"Authorization": f"Bearer {issued.json()['api_key']}"}) as http:
            assert http.get("/v1/auth/whoami").json()["party"] == body.get("party")
        listed = {k["key_id"]: k for k in admin.get("/v1/auth/keys").json()}
        assert listed[issued.json()["key_id"]]["party"] == body.get("party")
    with ledger.engine.begin() as conn:
        key = create_key(conn, KeyCreate(role=Role.VERIFIER, party=VERIFIER)).api_key
        assert authenticate(conn, f"Bearer {key}").party == VERIFIER
