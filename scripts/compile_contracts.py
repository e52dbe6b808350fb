#!/usr/bin/env python3
"""Compile ``contracts/*.sol`` with the pinned solcjs and write reproducible artifacts.

Usage::

    python scripts/compile_contracts.py           # (re)write contracts/artifacts/*.json
    python scripts/compile_contracts.py --check   # exit 1 if a committed artifact differs

The compiler is the WebAssembly ``solc`` pinned exactly in ``package.json`` (install
with ``npm ci``); it runs through ``scripts/solc_compile.js`` because the solcjs CLI
prints diagnostics on stdout before its JSON. Every input that affects the bytecode is
pinned here: source unit names relative to the repository (``contracts/X.sol``,
``@openzeppelin/contracts/...``), ``evmVersion`` shanghai (the newest fork ganache
7.9.2 runs; py-evm and anvil run it too), optimizer on with 200 runs, and the default
IPFS metadata hash, which is stable for identical sources and settings.

Each artifact is ``{abi, bytecode, compiler, contractName, deployedBytecode, settings,
sources}`` where ``sources`` maps every source unit the contract was built from to the
SHA-256 of its text; it is written as JSON with sorted keys and a trailing newline so
the committed file is byte-identical to a fresh compile.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = ROOT / "contracts"
ARTIFACTS_DIR = CONTRACTS_DIR / "artifacts"
NODE_MODULES = ROOT / "node_modules"
WRAPPER = ROOT / "scripts" / "solc_compile.js"

SETTINGS: dict[str, Any] = {
    "evmVersion": "shanghai",
    "optimizer": {"enabled": True, "runs": 200},
    "metadata": {"bytecodeHash": "ipfs"},
}
_OUTPUT_SELECTION = {
    "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]}
}


class CompileError(RuntimeError):
    """The toolchain is missing, or the compiler reported errors."""


def pinned_solc_version() -> str:
    """The exact ``solc`` version pinned in ``package.json``."""
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    return str(package["devDependencies"]["solc"])


def _check_toolchain() -> str:
    node = shutil.which("node")
    if node is None:
        raise CompileError("node is not on PATH; install Node.js 20+ to compile contracts")
    solc_package = NODE_MODULES / "solc" / "package.json"
    if not solc_package.is_file():
        raise CompileError(
            f"{solc_package.relative_to(ROOT)} is missing: run `npm ci` in {ROOT} "
            "to install the pinned solc"
        )
    installed = json.loads(solc_package.read_text(encoding="utf-8"))["version"]
    pinned = pinned_solc_version()
    if installed != pinned:
        raise CompileError(
            f"installed solc is {installed}, package.json pins {pinned}: run `npm ci`"
        )
    return node


def contract_sources() -> dict[str, str]:
    """Source unit name (``contracts/X.sol``) to text, for every ``contracts/*.sol``."""
    return {
        path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(CONTRACTS_DIR.glob("*.sol"))
    }


def standard_json_input() -> dict[str, Any]:
    """The solc standard-JSON input for all project contracts."""
    sources = {name: {"content": text} for name, text in contract_sources().items()}
    settings = dict(SETTINGS, outputSelection=_OUTPUT_SELECTION)
    return {"language": "Solidity", "sources": sources, "settings": settings}


def _resolve_source(unit: str) -> Path:
    for base in (ROOT, NODE_MODULES):
        path = (base / unit).resolve()
        if path.is_relative_to(ROOT) and path.is_file():
            return path
    raise CompileError(f"cannot find source unit {unit!r} in the checkout or node_modules")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_solc(std_input: dict[str, Any]) -> dict[str, Any]:
    """Run the pinned solcjs on ``std_input``; raise :class:`CompileError` on any error."""
    node = _check_toolchain()
    proc = subprocess.run(
        [node, str(WRAPPER)],
        input=json.dumps(std_input),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise CompileError(f"solc wrapper exited {proc.returncode}: {proc.stderr.strip()}")
    try:
        output: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise CompileError(f"solc wrapper printed non-JSON output: {proc.stdout[:200]!r}") from exc
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        text = "\n".join(e.get("formattedMessage", e.get("message", "?")) for e in errors)
        raise CompileError(f"solc reported {len(errors)} error(s):\n{text}")
    return output


def compile_all() -> dict[str, dict[str, Any]]:
    """Compile every ``contracts/*.sol``; return ``{contractName: artifact}``.

    Interfaces and abstract contracts (empty bytecode) get no artifact.
    """
    output = run_solc(standard_json_input())
    artifacts: dict[str, dict[str, Any]] = {}
    for unit, contracts in sorted(output.get("contracts", {}).items()):
        if not unit.startswith("contracts/"):
            continue
        for name, data in sorted(contracts.items()):
            bytecode = data["evm"]["bytecode"]["object"]
            if not bytecode:
                continue
            if name in artifacts:
                raise CompileError(f"contract name {name!r} is defined twice")
            metadata = json.loads(data["metadata"])
            artifacts[name] = {
                "contractName": name,
                "abi": data["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
                "compiler": metadata["compiler"]["version"],
                "settings": SETTINGS,
                "sources": {
                    src: sha256_file(_resolve_source(src)) for src in sorted(metadata["sources"])
                },
            }
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    """The canonical on-disk text of an artifact."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def artifact_path(name: str) -> Path:
    """Where the committed artifact of contract ``name`` lives."""
    return ARTIFACTS_DIR / f"{name}.json"


def check(artifacts: dict[str, dict[str, Any]]) -> list[str]:
    """Names of committed artifacts that are missing, stale, or no longer produced."""
    differing = [
        name
        for name, artifact in artifacts.items()
        if not artifact_path(name).is_file()
        or artifact_path(name).read_text(encoding="utf-8") != render(artifact)
    ]
    extra = [p.stem for p in sorted(ARTIFACTS_DIR.glob("*.json")) if p.stem not in artifacts]
    return differing + extra


def write(artifacts: dict[str, dict[str, Any]]) -> None:
    """Write every artifact to ``contracts/artifacts/``."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    for name, artifact in artifacts.items():
        artifact_path(name).write_text(render(artifact), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="recompile and fail if a committed artifact differs",
    )
    args = parser.parse_args(argv)
    try:
        artifacts = compile_all()
    except CompileError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.check:
        differing = check(artifacts)
        for name in differing:
            print(  # noqa: T201
                f"artifact differs from a fresh compile: {artifact_path(name).relative_to(ROOT)}",
                file=sys.stderr,
            )
        return 1 if differing else 0
    write(artifacts)
    for name in artifacts:
        print(f"wrote {artifact_path(name).relative_to(ROOT)}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
