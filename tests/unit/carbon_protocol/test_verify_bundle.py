"""The bundle verifier against committed assets, one defect per file.

Each asset says which numbered step must fail (``want_step``); the runner checks them
all and reports every disagreement at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from carbon_protocol.errors import BundleVerificationError
from carbon_protocol.models import ProofBundle
from carbon_protocol.verify import STEPS, verify_bundle

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "bundles"


def _outcome(raw: dict[str, object]) -> int | None:
    try:
        bundle = ProofBundle.model_validate_json(json.dumps(raw))
    except pydantic.ValidationError:
        return 0
    try:
        verify_bundle(bundle)
    except BundleVerificationError as exc:
        assert exc.step_name == STEPS[exc.step - 1]
        assert str(exc).startswith(f"step {exc.step} ({exc.step_name}) failed: ")
        return exc.step
    return None


def test_every_asset_fails_at_its_step() -> None:
    files = sorted(ASSETS.glob("*.json"))
    assert len(files) >= 60, "bundle assets missing: run scripts/gen_bundle_vectors.py"
    wrong = []
    for path in files:
        doc = json.loads(path.read_text())
        got = _outcome(doc["bundle"])
        if got != doc["want_step"]:
            wrong.append(f"{path.name}: want step {doc['want_step']}, got {got} ({doc['desc']})")
    assert not wrong, "\n".join(wrong)


def test_failures_carry_expected_and_found() -> None:
    doc = json.loads((ASSETS / "sm-log-sm-device__anchor-root-modified.json").read_text())
    bundle = ProofBundle.model_validate(doc["bundle"])
    with pytest.raises(BundleVerificationError) as info:
        verify_bundle(bundle)
    exc = info.value
    assert exc.step == 8 and exc.step_name == "anchor"
    assert exc.expected == bundle.signed_tree_head.tree_head.root_hash
    assert exc.found == bundle.anchor.root_hash
    assert exc.diagnostics()["step"] == 8


def test_trusted_log_key_pinning() -> None:
    doc = json.loads((ASSETS / "intl-log-intl-device__good.json").read_text())
    bundle = ProofBundle.model_validate(doc["bundle"])
    verify_bundle(bundle, trusted_log_keys={bundle.log_key.key_id})
    with pytest.raises(BundleVerificationError, match=r"step 5 \(log key\).*not trusted"):
        verify_bundle(bundle, trusted_log_keys={"00" * 16})


def test_good_bundles_pass_all_offline_steps() -> None:
    for path in sorted(ASSETS.glob("*__good.json")):
        bundle = ProofBundle.model_validate(json.loads(path.read_text())["bundle"])
        report = verify_bundle(bundle)
        assert report.passed == list(STEPS[:9]) and not report.chain_checked
