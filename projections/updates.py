"""`Updates`: the key changes one fold batch makes, grouped so a batch costs commands per key, not per event."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

# A batch touches hundreds of keys (one ZADD per index key, one HINCRBY per counter cell). Queued one by one
# in MULTI, each costs a request and a QUEUED reply parsed in Python; instead the whole batch goes to the
# server as a few calls of this script, which runs the commands in C-land. Its one argument is a msgpack
# array of commands `[name, key, args…]` (one string to pack and parse instead of millions of arguments);
# a `HINCRBY` command carries many `field, increment` pairs and runs as one HINCRBY per pair, in order.
# Arguments are strings, but ZADD scores travel as msgpack numbers: the script hands them to ZADD as the
# shortest text that reads back as the same double, so the stored scores are those of the string form.
# (Same transaction, same atomicity: the calls sit inside the MULTI.)
APPLY_COMMANDS = """
for _, cmd in ipairs(cmsgpack.unpack(ARGV[1])) do
  if cmd[1] == 'HINCRBY' then
    local key = cmd[2]
    for i = 3, #cmd, 2 do
      redis.call('HINCRBY', key, cmd[i], cmd[i + 1])
    end
  else
    redis.call(unpack(cmd))
  end
end
return 0
"""
MAX_COMMAND_ARGS = 4000  # Lua's unpack limit is near 8000; a longer command is split into several
MAX_SCRIPT_ARGS = 200_000  # arguments per script call, so one request stays a few MB at most

_encoder = msgspec.msgpack.Encoder()


def _command(name: str, key: str, items: list[str], out: list[list[str]], width: int) -> None:
    """Append `name key items…` to `out` (nothing if no items), split into commands of at most
    MAX_COMMAND_ARGS items."""
    step = (MAX_COMMAND_ARGS // width) * width
    if not items:
        return
    if len(items) <= step:
        items[:0] = (name, key)
        out.append(items)
        return
    for i in range(0, len(items), step):
        out.append([name, key, *items[i : i + step]])


def _pairs(firsts: Any, seconds: Any, n: int) -> list[Any]:
    """`first₁, second₁, first₂, …` of two iterables of length `n`."""
    flat: list[Any] = [None] * (2 * n)
    flat[::2] = firsts
    flat[1::2] = seconds
    return flat


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

    def commands(self) -> list[list[Any]]:
        """Every update as `[name, key, args…]` commands in a deterministic order, none longer than
        MAX_COMMAND_ARGS but HINCRBY's, which hold the key's `field, increment` pairs by field."""
        out: list[list[Any]] = []
        for key in sorted(self.zrem):
            _command("ZREM", key, sorted(self.zrem[key]), out, 1)
        for key in sorted(self.hset):
            fields = self.hset[key]
            _command("HSET", key, _pairs(fields, fields.values(), len(fields)), out, 2)
        for key in sorted(self.zadd):
            members = self.zadd[key]
            _command("ZADD", key, _pairs(members.values(), members, len(members)), out, 2)
        for key in sorted(self.sadd):
            _command("SADD", key, sorted(self.sadd[key]), out, 1)
        for key in sorted(self.hincr):
            cells = sorted((f, str(n)) for f, n in self.hincr[key].items() if n)
            _command("HINCRBY", key, [x for cell in cells for x in cell], out, 2)
        for key in sorted(self.hdel):
            _command("HDEL", key, sorted(self.hdel[key]), out, 1)
        return out

    def queue(self, pipe: Any, route_key: str | None = None) -> None:
        """Queue every update on a (transactional) pipeline as a few APPLY_COMMANDS calls.

        `route_key` (default: the first key updated) is declared to the script so a cluster routes it to
        the partition's slot; every key of a batch shares that slot."""
        commands = self.commands()
        if not commands:
            return
        route_key = route_key or commands[0][1]
        start = size = 0
        for i, cmd in enumerate(commands):
            if size + len(cmd) > MAX_SCRIPT_ARGS and i > start:
                pipe.eval(APPLY_COMMANDS, 1, route_key, _encoder.encode(commands[start:i]))
                start, size = i, 0
            size += len(cmd)
        pipe.eval(APPLY_COMMANDS, 1, route_key, _encoder.encode(commands[start:]))

    def __len__(self) -> int:
        return (
            len(self.hset)
            + len(self.zadd)
            + len(self.sadd)
            + len(self.hincr)
            + len(self.zrem)
            + len(self.hdel)
        )
