"""`Updates`: the key changes one fold batch makes, grouped so a batch costs commands per key, not per event."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .scripts import Script

# A batch touches hundreds of keys (one ZADD per index key, one HINCRBY per counter cell). Queued one by one
# in MULTI, each costs a request and a QUEUED reply parsed in Python; instead the whole batch goes to the
# server as a few calls of `apply_updates-1.lua`, which runs the commands server-side: the commands flattened
# into one argument list (`name, key, count, args…` each; hiredis packs it in C). ZADD scores are written as
# Python's shortest repr, so the stored scores are those of the string form.
# (Same transaction, same atomicity: the calls sit inside the MULTI.)
APPLY_UPDATES = Script(__package__, "apply_updates-1.lua")
MAX_COMMAND_ARGS = 4000  # Lua's unpack limit is near 8000; a longer command is split into several
MAX_SCRIPT_ARGS = 200_000  # arguments per script call, so one request stays a few MB at most


def _emit(out: list[list[Any]], cmd: list[Any], width: int, head: int = 2) -> None:
    """Append `cmd` (`name, key, [flag,] items…`: `head` words before the items) to `out` unless it has no
    items, split into commands of at most MAX_COMMAND_ARGS items."""
    n = len(cmd) - head
    if n <= 0:
        return
    step = (MAX_COMMAND_ARGS // width) * width
    if n <= step:
        out.append(cmd)
        return
    for i in range(head, len(cmd), step):
        out.append([*cmd[:head], *cmd[i : i + step]])


def _sorted(name: str, key: str, items: set[str]) -> list[Any]:
    """`name key items…` (in sorted order)."""
    cmd: list[Any] = sorted(items)
    cmd[:0] = (name, key)
    return cmd


def _pairs(name: str, key: str, firsts: Any, seconds: Any, n: int) -> list[Any]:
    """`name key first₁ second₁ first₂ …` of two iterables of length `n`."""
    cmd: list[Any] = [None] * (2 * n + 2)
    cmd[0], cmd[1] = name, key
    cmd[2::2] = firsts
    cmd[3::2] = seconds
    return cmd


T = TypeVar("T")


class Targets(dict[str, T], Generic[T]):
    """The updates of keys named by one value each (events by type, by domain, …): `targets[value]` is the
    update of `key_of(value)`, looked up in `Updates` once per value and batch instead of once per event."""

    def __init__(self, updates: dict[str, T], key_of: Callable[[str], str]) -> None:
        super().__init__()
        self._updates = updates
        self._key_of = key_of

    def __missing__(self, value: str) -> T:
        target = self[value] = self._updates[self._key_of(value)]
        return target


class Updates:
    def __init__(self) -> None:
        self.hset: dict[str, dict[str, str]] = defaultdict(dict)
        self.zadd: dict[str, dict[str, float]] = defaultdict(dict)
        self.zrem: dict[str, set[str]] = defaultdict(set)
        self.sadd: dict[str, set[str]] = defaultdict(set)
        self.hincr: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.hdel: dict[str, set[str]] = defaultdict(set)  # e.g. counter cells moved to zero
        # ZADD GT / LT: a member's score only ever rises / falls (newest / oldest timestamps)
        self.zadd_gt: dict[str, dict[str, float]] = defaultdict(dict)
        self.zadd_lt: dict[str, dict[str, float]] = defaultdict(dict)
        self.delete: set[str] = set()  # whole keys dropped (run last)
        # fixed-width records merged into a string kept sorted by their first 16 bytes (a ULID)
        self.records: dict[str, list[bytes]] = defaultdict(list)
        self.append: dict[str, list[bytes]] = defaultdict(list)  # bytes appended to a string, in order
        self.remove_records: dict[str, set[bytes]] = defaultdict(set)  # records taken out of such strings
        self.set: dict[str, bytes] = {}  # strings written whole
        self.zremrange: dict[str, int] = {}  # ZSET members scored below this dropped (run first)
        # A projection's own scripts (script, keys, argument list), for updates no command makes (the chunked
        # sets of `touchpoints.chunks`): queued first, in the order added.
        self.scripts: list[tuple[Script, list[str], list[Any]]] = []

    def commands(self) -> list[list[Any]]:
        """Every update as `[name, key, args…]` commands in a deterministic order, none longer than
        MAX_COMMAND_ARGS but HINCRBY's, which hold the key's `field, increment` pairs by field."""
        out: list[list[Any]] = []
        for key in sorted(self.zremrange):
            out.append(["ZREMRANGEBYSCORE", key, "-inf", f"({self.zremrange[key]}"])
        for key in sorted(self.zrem):
            _emit(out, _sorted("ZREM", key, self.zrem[key]), 1)
        for key in sorted(self.hset):
            fields = self.hset[key]
            _emit(out, _pairs("HSET", key, fields, fields.values(), len(fields)), 2)
        for key in sorted(self.zadd):
            members = self.zadd[key]
            _emit(out, _pairs("ZADD", key, members.values(), members, len(members)), 2)
        for flag, updates in (("GT", self.zadd_gt), ("LT", self.zadd_lt)):
            for key in sorted(updates):
                members = updates[key]
                cmd = _pairs("ZADD", key, members.values(), members, len(members))
                cmd.insert(2, flag)
                _emit(out, cmd, 2, head=3)
        for key in sorted(self.sadd):
            _emit(out, _sorted("SADD", key, self.sadd[key]), 1)
        for key in sorted(self.hincr):
            cells = self.hincr[key]
            names = sorted(f for f, n in cells.items() if n) if 0 in cells.values() else sorted(cells)
            _emit(out, _pairs("HINCRBY", key, names, [str(cells[f]) for f in names], len(names)), 2)
        for key in sorted(self.hdel):
            _emit(out, _sorted("HDEL", key, self.hdel[key]), 1)
        for key in sorted(self.records):
            records = sorted(self.records[key])
            if records:
                _emit(out, ["MERGE_RECORDS", key, len(records[0]), *records], 1, head=3)
        for key in sorted(self.remove_records):
            records = sorted(self.remove_records[key])
            if records:
                _emit(out, ["REMOVE_RECORDS", key, len(records[0]), *records], 1, head=3)
        for key in sorted(self.set):
            out.append(["SET", key, self.set[key]])
        for key in sorted(self.append):
            if self.append[key]:
                out.append(["APPEND", key, b"".join(self.append[key])])
        if self.delete:
            _emit(out, ["DEL", *sorted(self.delete)], 1, head=1)
        return out

    def queue(self, pipe: Any, route_key: str | None = None) -> None:
        """Queue every update on a (transactional) pipeline: `scripts`, then a few `APPLY_UPDATES` calls.

        `route_key` (default: the first key updated) is declared to the script so a cluster routes it to
        the partition's slot; every key of a batch shares that slot."""
        for script, keys, argv in self.scripts:
            script.queue_argv(pipe, keys, argv)
        commands = self.commands()
        if not commands:
            return
        route_key = route_key or commands[0][1]
        argv: list[Any] = []
        for cmd in commands:
            if len(argv) + len(cmd) > MAX_SCRIPT_ARGS and argv:
                APPLY_UPDATES.queue_argv(pipe, [route_key], argv)
                argv = []
            argv += (cmd[0], cmd[1], len(cmd) - 2)
            argv += cmd[2:]
        APPLY_UPDATES.queue_argv(pipe, [route_key], argv)

    def __len__(self) -> int:
        return (
            len(self.hset)
            + len(self.zadd)
            + len(self.sadd)
            + len(self.hincr)
            + len(self.zrem)
            + len(self.hdel)
            + len(self.zadd_gt)
            + len(self.zadd_lt)
            + len(self.delete)
            + len(self.records)
            + len(self.append)
            + len(self.remove_records)
            + len(self.set)
            + len(self.zremrange)
            + len(self.scripts)
        )
