"""The committed contract artifacts are exactly what the pinned compiler makes.

The runtime loads ``contracts/artifacts/*.json`` and never compiles, so these tests are
what ties the deployed bytecode to the reviewed ``.sol`` sources: recompiling with the
solcjs pinned in ``package.json`` must reproduce every artifact byte for byte, and each
artifact's ``sources`` must hash the sources as they are now.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from ledger_service._internal.contract_artifacts import ARTIFACTS_DIR, load_artifact

ROOT = Path(__file__).resolve().parents[2]


def load_compiler() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "compile_contracts", ROOT / "scripts" / "compile_contracts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_node_toolchain() -> None:
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH; these tests need Node.js 20+ (CI installs it)")
    if not (ROOT / "node_modules" / "solc" / "package.json").is_file():
        pytest.fail("node_modules/solc is missing: run `npm ci` in the repository root")


def committed() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(ARTIFACTS_DIR.glob("*.json"))}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.node
def test_recompiled_artifacts_are_byte_identical() -> None:
    require_node_toolchain()
    compiler = load_compiler()
    fresh = {name: compiler.render(a) for name, a in compiler.compile_all().items()}
    assert sorted(fresh) == sorted(committed()), "artifact set differs from contracts/*.sol"
    for name, text in fresh.items():
        assert committed()[name] == text, (
            f"contracts/artifacts/{name}.json differs from a fresh compile: "
            "run `python scripts/compile_contracts.py` and commit the result"
        )
    assert compiler.check(compiler.compile_all()) == []


@pytest.mark.node
def test_artifact_sources_match_installed_dependencies() -> None:
    require_node_toolchain()
    for name in committed():
        for unit, digest in load_artifact(name).sources.items():
            if not unit.startswith("contracts/"):
                assert sha256(ROOT / "node_modules" / unit) == digest, f"{name}: {unit} changed"


def test_artifact_sources_match_contract_files() -> None:
    covered: set[str] = set()
    for name in committed():
        for unit, digest in load_artifact(name).sources.items():
            if unit.startswith("contracts/"):
                assert sha256(ROOT / unit) == digest, (
                    f"{unit} changed since contracts/artifacts/{name}.json was compiled: "
                    "run `python scripts/compile_contracts.py`"
                )
                covered.add(unit)
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "contracts").glob("*.sol")}
    assert on_disk <= covered, f"not compiled into any artifact: {sorted(on_disk - covered)}"


def test_artifact_is_canonical_and_pinned() -> None:
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    pinned = package["devDependencies"]["solc"]
    for name, text in committed().items():
        data = json.loads(text)
        assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
        artifact = load_artifact(name)
        assert artifact.compiler.startswith(f"{pinned}+commit."), artifact.compiler
        assert artifact.settings["evmVersion"] == "shanghai"  # ganache 7.9.2 runs it
        assert artifact.settings["optimizer"] == {"enabled": True, "runs": 200}
        assert 0 < len(artifact.deployed_bytecode) < len(artifact.bytecode)


def test_dependencies_are_pinned_exactly() -> None:
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    assert package["devDependencies"] == {
        "@foundry-rs/anvil": "1.7.1",
        "@openzeppelin/contracts": "5.7.0",
        "ganache": "7.9.2",
        "solc": "0.8.37",
    }
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    for dep, version in package["devDependencies"].items():
        assert lock["packages"][f"node_modules/{dep}"]["version"] == version
