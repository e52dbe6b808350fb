"""Generate proof-bundle test assets: good bundles and one mutated bundle per defect.

Writes ``tests/assets/bundles/<name>.json``, each ``{"desc", "want_step", "bundle"}``
where ``want_step`` is the number of the verification step that must fail (``null``
when the bundle must verify, ``0`` when it must not even parse). Bundles come from a
real ledger (SQLite + in-process EVM) run once; SM2 signatures are randomised, so the
assets are committed rather than regenerated on every run.

    .venv/bin/python scripts/gen_bundle_vectors.py
"""

from __future__ import annotations

import copy
import json
import secrets
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carbon_protocol.models import Reading
from carbon_protocol.signing import sign_reading
from carbon_protocol.suites import PrivateKey
from ledger_service import registry
from ledger_service.ledger import Ledger
from ledger_service.models import DeviceCreate, DeviceKeyCreate, EnterpriseCreate, SiteCreate
from ledger_service.settings import Settings

OUT = Path(__file__).resolve().parent.parent / "tests" / "assets" / "bundles"
Bundle = dict[str, Any]


def _flip(hex_str: str, byte: int = 0, bit: int = 3) -> str:
    raw = bytearray(bytes.fromhex(hex_str.removeprefix("0x")))
    raw[byte] ^= 1 << bit
    return ("0x" if hex_str.startswith("0x") else "") + raw.hex()


def make_bundles(log_suite: str, device_suite: str) -> Bundle:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger.open(Settings(data_dir=Path(tmp), log_suite=log_suite))
        ledger.call(registry.create_enterprise, EnterpriseCreate(id="86.1000.1/ent.v", name="V"))
        ledger.call(registry.create_site, SiteCreate(
            id="86.1000.1/site.v", enterprise_id="86.1000.1/ent.v", name="S", region="Beijing"))
        dev = "86.1000.1/dev.vector-1"
        ledger.call(registry.create_device, DeviceCreate(
            id=dev, site_id="86.1000.1/site.v", quantity="heat", unit="GJ", serial="H-1"))
        key = PrivateKey.generate(device_suite)  # type: ignore[arg-type]
        ledger.call(registry.add_device_key, dev, DeviceKeyCreate(
            suite=device_suite, public_key=key.public_key().hex(),  # type: ignore[arg-type]
            valid_from="2026-01-01T00:00:00Z"))
        batch = [
            sign_reading(Reading(
                suite=device_suite, key_id=key.public_key().key_id, device=dev, seq=seq,  # type: ignore[arg-type]
                measured_at=f"2026-01-01T{seq // 4:02d}:{seq % 4 * 15:02d}:00Z",
                quantity="heat", unit="GJ", value=f"{seq}.25", cumulative=f"{100 + seq}.5",
                quality="measured", salt=secrets.token_hex(16), domain=ledger.domain), key)
            for seq in range(1, 12)
        ]
        receipts = ledger.ingest(batch).items
        ledger.anchor_tick(force=True)
        bundle = ledger.export_proof(receipts[5].receipt.reading_id)  # type: ignore[union-attr]
        ledger.engine.dispose()
        return json.loads(bundle.model_dump_json())


def mutations(other_key: PrivateKey) -> dict[str, tuple[str, int | None, Callable[[Bundle], None]]]:
    def set_(path: str, value: Any) -> Callable[[Bundle], None]:
        def apply(b: Bundle) -> None:
            *parents, last = path.split(".")
            node = b
            for p in parents:
                node = node[int(p)] if isinstance(node, list) else node[p]
            node[last] = value(node[last]) if callable(value) else value
        return apply

    def other_device_key(b: Bundle) -> None:
        pub = PrivateKey.generate(b["device_key"]["suite"]).public_key()
        b["device_key"].update(public_key=pub.hex(), key_id=pub.key_id)

    def other_log_key(b: Bundle) -> None:
        pub = other_key.public_key()
        b["log_key"].update(public_key=pub.hex(), key_id=pub.key_id)

    def proof_bit(b: Bundle) -> None:
        b["inclusion_proof"][0] = _flip(b["inclusion_proof"][0])

    def anchor_time(offset: int, field: str) -> Callable[[Bundle], None]:
        def apply(b: Bundle) -> None:
            from datetime import UTC, datetime
            t = datetime.fromtimestamp(b["anchor"]["block_timestamp"] + offset, UTC)
            b["device_key"][field] = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        return apply

    return {
        "device-key-other-key": ("device key replaced by another key", 1, other_device_key),
        "device-key-id-modified": ("device key id altered", 1,
                                   set_("device_key.key_id", lambda v: _flip(v))),
        "device-key-other-device": ("device key claims another device", 1,
                                    set_("device_key.device", "86.1000.1/dev.other")),
        "reading-value-modified": ("reading value edited after signing", 2,
                                   set_("signed_reading.reading.value", "999.25")),
        "reading-salt-modified": ("salt altered", 2,
                                  set_("signed_reading.reading.salt", lambda v: _flip(v))),
        "reading-signature-bit-@3": ("signature bit flipped", 2,
                                     set_("signed_reading.signature", lambda v: _flip(v, 40))),
        "leaf-hash-modified": ("bundled leaf hash altered", 3,
                               set_("leaf_hash", lambda v: _flip(v))),
        "reading-id-modified": ("reading identifier not derived from the leaf", 3,
                                set_("reading_id", "86.1000.1/r.00000000000000000000000000000000")),
        "modified-proof[0]-bit-@3": ("inclusion proof hash altered", 4, proof_bit),
        "leaf-index-plus-1": ("leaf index off by one", 4, set_("leaf_index", lambda v: v + 1)),
        "proof-missing-last": ("inclusion proof truncated", 4,
                               set_("inclusion_proof", lambda v: v[:-1])),
        "proof-trailing-garbage": ("inclusion proof with an extra hash", 4,
                                   set_("inclusion_proof", lambda v: [*v, "00" * 32])),
        "tree-head-root-modified": ("tree head root altered", 4,
                                    set_("signed_tree_head.tree_head.root_hash",
                                         lambda v: _flip(v))),
        "log-key-other-key": ("log key replaced", 5, other_log_key),
        "tree-head-signature-bit-@3": ("tree head signature flipped", 6,
                                       set_("signed_tree_head.signature", lambda v: _flip(v, 40))),
        "tree-head-timestamp-modified": ("tree head timestamp altered after signing", 6,
                                         set_("signed_tree_head.tree_head.timestamp",
                                              "2030-01-01T00:00:00Z")),
        "anchor-wrong-chain-id": ("anchor on another chain than the reading's domain", 7,
                                  set_("anchor.chain_id", 1)),
        "anchor-wrong-contract": ("anchor in another contract", 7,
                                  set_("anchor.contract", "0x" + "22" * 20)),
        "anchor-log-key-modified": ("anchor for another log", 8,
                                    set_("anchor.log_key", lambda v: _flip(v))),
        "anchor-tree-size-plus-1": ("anchor of another tree size", 8,
                                    set_("anchor.tree_size", lambda v: v + 1)),
        "anchor-root-modified": ("anchored root differs", 8,
                                 set_("anchor.root_hash", lambda v: _flip(v))),
        "key-revoked-before-anchor": ("device key revoked before the anchor", 9,
                                      anchor_time(-60, "revoked_at")),
        "key-revoked-after-anchor": ("device key revoked after the anchor: still valid",
                                     None, anchor_time(3600, "revoked_at")),
        "key-valid-after-anchor": ("device key valid only after the anchor", 9,
                                   anchor_time(60, "valid_from")),
        "unknown-field": ("an unknown field", 0, set_("anchor.extra", 1)),
        "format-v2": ("an unknown format", 0, set_("format", "carbon-ledger/proof-bundle/v2")),
        "value-as-number": ("decimal value as a JSON number", 0,
                            set_("signed_reading.reading.value", 1.25)),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    for log_suite, device_suite in (("sm", "sm"), ("intl", "intl"), ("sm", "intl")):
        base = make_bundles(log_suite, device_suite)
        tag = f"{log_suite}-log-{device_suite}-device"
        cases = {"good": ("a good bundle", None, lambda b: None),
                 **mutations(PrivateKey.generate(log_suite))}  # type: ignore[arg-type]
        for name, (desc, step, mutate) in cases.items():
            b = copy.deepcopy(base)
            mutate(b)
            doc = {"desc": f"{desc} ({tag})", "want_step": step, "bundle": b}
            text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
            (OUT / f"{tag}__{name}.json").write_text(text)
    print(f"wrote {len(list(OUT.glob('*.json')))} bundles to {OUT}", file=sys.stderr)  # noqa: T201 (a script's report)


if __name__ == "__main__":
    main()
