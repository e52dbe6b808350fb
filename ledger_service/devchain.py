"""Local development chains: start anvil or ganache from the pinned npm packages.

Both nodes listen on 127.0.0.1 only and fund the same well-known development keys
(anvil's "test test … junk" mnemonic), so a deployment made on one works on the other.
anvil runs with ``--prune-history`` and a cache path inside the given work directory:
by default it writes gigabytes of historical state under ``~/.foundry``.

``carbon-ledger devchain`` (:func:`run_devchain`) starts one node, deploys
``CarbonAnchor`` on it and writes a deployment file (:mod:`ledger_service.deployment`) that
the service reads through ``LEDGER_DEPLOYMENT_FILE``.

Fault tests drive the nodes through :meth:`DevNode.rpc` (``anvil_reorg``,
``anvil_dropTransaction``, ``anvil_setAutomine``, ``evm_mine``), :meth:`DevNode.kill`
(SIGKILL: a crash; with ``state_interval`` anvil has dumped its state to ``--state``
every so many seconds) and :meth:`DevNode.restart` (the same command on the same port,
hence the same state file).

These keys are public knowledge: never use them, or these nodes, for anything real.
"""

from __future__ import annotations

import itertools
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal

from .errors import AnchorError, ChainUnavailableError

__all__ = ["DEV_KEYS", "DEV_REGULATOR_KEY", "NodeKind", "DevNode", "free_port", "start_node",
           "node_command", "run_devchain"]

ROOT = Path(__file__).resolve().parent.parent
NodeKind = Literal["anvil", "ganache"]

#: anvil's well-known development keys, each funded with 10,000 ether on both nodes.
DEV_KEYS: tuple[str, ...] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
)
#: The development regulator: ``devchain --rules`` grants it ``REGULATOR_ROLE`` on the
#: ``QuotaRegistry`` (account 0xf39F… deploys; this is 0x90F7…, anvil's fourth).
DEV_REGULATOR_KEY = DEV_KEYS[3]
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
                 block_time: float | None = None, state_file: Path | None = None,
                 chain_id: int | None = None, hardfork: str | None = None,
                 state_interval: float | None = None, prune_history: bool = True) -> list[str]:
    """The command line that starts ``kind`` on 127.0.0.1:``port``.

    ``state_file``: anvil loads it at start (if it exists) and dumps to it at exit
    (SIGTERM/SIGINT) and, with ``state_interval``, every that many seconds; the dump
    holds blocks, receipts and accounts but not the transaction pool. For ganache it is
    a database directory written as it goes. ``prune_history=False`` keeps anvil's
    past states in memory, which ``anvil_reorg`` needs. ``hardfork`` defaults to the
    node's own default for anvil and to ``shanghai`` for ganache (its newest).
    """
    chain_id = CHAIN_IDS[kind] if chain_id is None else chain_id
    if kind == "anvil":
        cmd = [str(_binary(kind)), "--host", "127.0.0.1", "--port", str(port), "--silent",
               "--cache-path", str(workdir.resolve() / "anvil-cache"), "--chain-id", str(chain_id)]
        if prune_history:
            cmd.append("--prune-history")
        if hardfork is not None:
            cmd += ["--hardfork", hardfork]
        if block_time is not None:
            cmd += ["--block-time", str(block_time)]
        if state_file is not None:
            cmd += ["--state", str(state_file.resolve())]
            if state_interval is not None:
                cmd += ["--state-interval", str(state_interval)]
        elif state_interval is not None:
            raise ValueError("state_interval needs a state_file")
        return cmd
    if state_interval is not None:
        raise ValueError("state_interval is anvil's; ganache writes its database as it goes")
    cmd = [str(_binary(kind)), "--server.host", "127.0.0.1", "--server.port", str(port),
           "--chain.chainId", str(chain_id), "--chain.hardfork", hardfork or "shanghai",
           "--logging.quiet"]
    for key in DEV_KEYS:
        cmd += ["--wallet.accounts", f"{key},{_BALANCE_WEI}"]
    if block_time is not None:
        cmd += ["--miner.blockTime", str(block_time)]
    if state_file is not None:
        cmd += ["--database.dbPath", str(state_file.resolve())]
    return cmd


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


_rpc_ids = itertools.count(1)


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
    command: list[str] = field(default_factory=list, repr=False)
    workdir: Path | None = field(default=None, repr=False)
    port: int = 0

    def stop(self) -> None:
        """Terminate the node (SIGTERM, so anvil dumps its ``--state``; SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL the node: a crash, nothing flushed at exit."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def restart(self, timeout: float = 30.0) -> None:
        """Start the same command again on the same port (after :meth:`stop`/:meth:`kill`);
        with a state file the node resumes from what it last dumped."""
        if self.process.poll() is None:
            raise RuntimeError(f"{self.kind} on {self.url} is still running")
        deadline = time.monotonic() + timeout
        while not _port_free(self.port):
            if time.monotonic() > deadline:
                raise ChainUnavailableError(f"port {self.port} is still taken")
            time.sleep(0.05)
        self.process = _launch(self.command, self.workdir or Path("."))
        _wait_answering(self, timeout)

    def rpc(self, method: str, *params: Any) -> Any:
        """Call a JSON-RPC method (e.g. ``anvil_reorg``) and return its ``result``."""
        body = json.dumps({"jsonrpc": "2.0", "id": next(_rpc_ids), "method": method,
                           "params": list(params)})
        request = urllib.request.Request(self.url, body.encode(),
                                         {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
        except OSError as exc:
            raise ChainUnavailableError(f"{method} on {self.url}: {exc}") from exc
        if "error" in answer:
            raise AnchorError(f"{method} on {self.url} failed: {answer['error']}",
                              rpc_error=answer["error"])
        return answer.get("result")

    def __enter__(self) -> DevNode:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _launch(cmd: Sequence[str], workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=workdir)


def _wait_answering(node: DevNode, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _answers(node.url):
        if node.process.poll() is not None:
            raise ChainUnavailableError(f"{node.kind} exited with status "
                                        f"{node.process.returncode} before answering on "
                                        f"{node.url}")
        if time.monotonic() > deadline:
            node.stop()
            raise ChainUnavailableError(f"{node.kind} did not answer on {node.url} within "
                                        f"{timeout:.0f} s")
        time.sleep(0.05)


def start_node(kind: NodeKind, workdir: Path, *, port: int | None = None,
               block_time: float | None = None, state_file: Path | None = None,
               chain_id: int | None = None, hardfork: str | None = None,
               state_interval: float | None = None, prune_history: bool = True,
               timeout: float = 30.0) -> DevNode:
    """Start ``kind`` and wait (bounded) until it answers JSON-RPC (see
    :func:`node_command` for the options)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = node_command(kind, port, workdir, block_time=block_time, state_file=state_file,
                       chain_id=chain_id, hardfork=hardfork, state_interval=state_interval,
                       prune_history=prune_history)
    node = DevNode(kind, f"http://127.0.0.1:{port}",
                   CHAIN_IDS[kind] if chain_id is None else chain_id,
                   _launch(cmd, workdir), cmd, workdir, port)
    _wait_answering(node, timeout)
    return node


def run_devchain(kind: NodeKind, *, port: int = 8545, out: Path = Path("var/deployment.json"),
                 state: Path | None = None, block_time: float | None = None,
                 hardfork: str | None = None, anchorers: Sequence[str] = (),
                 deployer_key: str = DEV_KEYS[0], workdir: Path | None = None,
                 on_ready: Callable[[Any], None] | None = None, rules: bool = False,
                 rules_effective_from: int | None = None) -> int:
    """Run ``kind`` on 127.0.0.1:``port`` in the foreground until SIGINT/SIGTERM.

    Deploys ``CarbonAnchor`` with ``deployer_key`` (admin and anchorer) and, with
    ``rules``, a ``RuleRegistry`` beside it holding the default methodology, effective
    from ``rules_effective_from`` (default: the second after the node's latest block;
    the registry refuses retroactive versions), and a ``QuotaRegistry`` whose regulator
    is :data:`DEV_REGULATOR_KEY`'s account; grants
    ``ANCHORER_ROLE`` to each of ``anchorers``, and writes the deployment file ``out``
    (atomically: a reader never sees half a file). With ``state`` the node keeps its
    chain in that file; if ``out`` already describes a contract that is still there on
    this chain, it is reused instead of deploying again. On a signal the node is stopped
    with SIGTERM (anvil dumps its state) and 0 is returned; if the node dies on its own,
    :class:`ChainUnavailableError` is raised.
    """
    from .deployment import Deployment, deploy, grant_anchorers

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    workdir = workdir or (out.parent / f"devchain-{kind}")
    node = start_node(kind, workdir, port=port, block_time=block_time, state_file=state,
                      hardfork=hardfork)
    try:
        deployment = None
        if state is not None and out.exists():
            deployment = Deployment.reuse(out, node.url, deployer_key)
            if deployment is not None:
                grant_anchorers(deployment, deployer_key, anchorers)
        if deployment is None:
            if rules and rules_effective_from is None:
                latest = node.rpc("eth_getBlockByNumber", "latest", False)
                rules_effective_from = int(latest["timestamp"], 16) + 1
            regulator = None
            if rules:
                from eth_account import Account

                regulator = Account.from_key(DEV_REGULATOR_KEY).address
            deployment = deploy(node.url, deployer_key, anchorers=anchorers, node=kind,
                                rules_effective_from=rules_effective_from, regulator=regulator)
        deployment.write(out)
        if on_ready is not None:
            on_ready(deployment)
        while not stop.wait(0.2):
            # A Ctrl-C in a terminal reaches the node too (same process group), and it
            # may exit a moment before our handler runs: that is a stop, not a crash.
            if node.process.poll() is not None and not stop.wait(1.0):
                raise ChainUnavailableError(
                    f"{kind} on {node.url} exited with status {node.process.returncode}")
        return 0
    finally:
        node.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.stderr.flush()
