"""Local development chains: start anvil or ganache from the pinned npm packages.

Both nodes listen on 127.0.0.1 only and fund the same well-known development keys
(anvil's "test test … junk" mnemonic), so a deployment made on one works on the other.
anvil runs with ``--prune-history`` and a cache path inside the given work directory:
by default it writes gigabytes of historical state under ``~/.foundry``.

These keys are public knowledge: never use them, or these nodes, for anything real.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from .errors import ChainUnavailableError

__all__ = ["DEV_KEYS", "NodeKind", "DevNode", "free_port", "start_node", "node_command"]

ROOT = Path(__file__).resolve().parent.parent
NodeKind = Literal["anvil", "ganache"]

#: anvil's well-known development keys, each funded with 10,000 ether on both nodes.
DEV_KEYS: tuple[str, ...] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
)
CHAIN_IDS: dict[str, int] = {"anvil": 31337, "ganache": 1337}
_BALANCE_WEI = 10_000 * 10**18


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(kind: NodeKind) -> Path:
    if kind == "anvil":
        found = sorted((ROOT / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil"))
    else:
        found = [p for p in [ROOT / "node_modules" / ".bin" / "ganache"] if p.exists()]
    if not found:
        raise ChainUnavailableError(
            f"{kind} is not installed: run `npm ci` in {ROOT} (package.json pins it)")
    return found[0]


def node_command(kind: NodeKind, port: int, workdir: Path, *,
                 block_time: float | None = None, state_file: Path | None = None) -> list[str]:
    """The command line that starts ``kind`` on 127.0.0.1:``port``."""
    if kind == "anvil":
        cmd = [str(_binary(kind)), "--host", "127.0.0.1", "--port", str(port), "--silent",
               "--prune-history", "--cache-path", str(workdir / "anvil-cache"),
               "--chain-id", str(CHAIN_IDS[kind])]
        if block_time is not None:
            cmd += ["--block-time", str(block_time)]
        if state_file is not None:
            cmd += ["--state", str(state_file)]
        return cmd
    cmd = [str(_binary(kind)), "--server.host", "127.0.0.1", "--server.port", str(port),
           "--chain.chainId", str(CHAIN_IDS[kind]), "--chain.hardfork", "shanghai",
           "--logging.quiet"]
    for key in DEV_KEYS:
        cmd += ["--wallet.accounts", f"{key},{_BALANCE_WEI}"]
    if block_time is not None:
        cmd += ["--miner.blockTime", str(block_time)]
    if state_file is not None:
        cmd += ["--database.dbPath", str(state_file)]
    return cmd


def _answers(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=0.5) as response:
            return "result" in json.loads(response.read())
    except (OSError, ValueError):
        return False


@dataclass
class DevNode:
    """A running development node; stop it with :meth:`stop` or a ``with`` block."""

    kind: NodeKind
    url: str
    chain_id: int
    process: subprocess.Popen[bytes] = field(repr=False)

    def stop(self) -> None:
        """Terminate the node (SIGTERM, then SIGKILL after 5 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> DevNode:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_node(kind: NodeKind, workdir: Path, *, port: int | None = None,
               block_time: float | None = None, state_file: Path | None = None,
               timeout: float = 30.0) -> DevNode:
    """Start ``kind`` and wait (bounded) until it answers JSON-RPC."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = node_command(kind, port, workdir, block_time=block_time, state_file=state_file)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=workdir)
    node = DevNode(kind, f"http://127.0.0.1:{port}", CHAIN_IDS[kind], proc)
    deadline = time.monotonic() + timeout
    while not _answers(node.url):
        if proc.poll() is not None:
            raise ChainUnavailableError(f"{kind} exited with status {proc.returncode} "
                                        f"before answering on {node.url}")
        if time.monotonic() > deadline:
            node.stop()
            raise ChainUnavailableError(f"{kind} did not answer on {node.url} within "
                                        f"{timeout:.0f} s")
        time.sleep(0.05)
    return node
