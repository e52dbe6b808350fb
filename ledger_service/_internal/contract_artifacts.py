"""Load the committed, reproducible build artifacts of the project's contracts.

``contracts/artifacts/<Name>.json`` is written by ``scripts/compile_contracts.py`` from
the pinned solcjs (see that script for the pinned settings), and a test recompiles and
compares it byte for byte. The runtime therefore needs neither node nor a compiler.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["ARTIFACTS_DIR", "ContractArtifact", "load_artifact"]

#: The checkout's ``contracts/artifacts`` folder (the package is installed editable).
ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "contracts" / "artifacts"


@dataclass(frozen=True)
class ContractArtifact:
    """ABI and bytecode of one compiled contract, with what it was compiled from."""

    contract_name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    deployed_bytecode: bytes
    compiler: str
    settings: dict[str, Any]
    sources: dict[str, str]


def _hex(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


@cache
def load_artifact(name: str, directory: Path = ARTIFACTS_DIR) -> ContractArtifact:
    """Load ``<directory>/<name>.json``.

    Raises :class:`FileNotFoundError` naming the file and the command that makes it
    when the artifact is missing; that is a broken checkout, not a runtime condition.
    """
    path = directory / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"contract artifact {path} is missing; run `python scripts/compile_contracts.py`"
        ) from None
    if data.get("contractName") != name:
        raise ValueError(f"{path} holds contract {data.get('contractName')!r}, expected {name!r}")
    return ContractArtifact(
        contract_name=name,
        abi=tuple(data["abi"]),
        bytecode=_hex(data["bytecode"]),
        deployed_bytecode=_hex(data["deployedBytecode"]),
        compiler=data["compiler"],
        settings=data["settings"],
        sources=data["sources"],
    )
