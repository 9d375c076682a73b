"""`Updates`: the key changes one fold batch makes, grouped so a batch costs commands per key, not per event."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

# A batch touches hundreds of keys (one ZADD per index key, one HINCRBY per counter cell). Queued one by one
# in MULTI, each costs a request and a QUEUED reply parsed in Python; instead the whole batch goes to the
# server as a few calls of this script, which runs the commands in C-land. ARGV is a flat run of
# `argc, command, args…` groups. (Same transaction, same atomicity: the calls sit inside the MULTI.)
APPLY_COMMANDS = """
local i, n = 1, #ARGV
while i <= n do
  local argc = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + argc))
  i = i + argc + 1
end
return 0
"""
MAX_COMMAND_ARGS = 4000  # Lua's unpack limit is near 8000; a longer command is split into several
MAX_SCRIPT_ARGS = 200_000  # arguments per script call, so one request stays a few MB at most


class Updates:
    def __init__(self) -> None:
        self.hset: dict[str, dict[str, str]] = defaultdict(dict)
        self.zadd: dict[str, dict[str, float]] = defaultdict(dict)
        self.zrem: dict[str, set[str]] = defaultdict(set)
        self.sadd: dict[str, set[str]] = defaultdict(set)
        self.hincr: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.hdel: dict[str, set[str]] = defaultdict(set)  # e.g. counter cells moved to zero

    def commands(self) -> list[list[Any]]:
        """Every update as Redis commands, in a deterministic order, none longer than MAX_COMMAND_ARGS."""
        out: list[list[Any]] = []

        def emit(name: str, key: str, items: list[Any], width: int) -> None:
            step = (MAX_COMMAND_ARGS // width) * width
            for i in range(0, len(items), step):
                out.append([name, key, *items[i : i + step]])

        for key in sorted(self.zrem):
            emit("ZREM", key, sorted(self.zrem[key]), 1)
        for key in sorted(self.hset):
            emit("HSET", key, [x for f, v in self.hset[key].items() for x in (f, v)], 2)
        for key in sorted(self.zadd):
            emit("ZADD", key, [x for m, sc in self.zadd[key].items() for x in (sc, m)], 2)
        for key in sorted(self.sadd):
            emit("SADD", key, sorted(self.sadd[key]), 1)
        for key in sorted(self.hincr):
            for field, n in sorted(self.hincr[key].items()):
                if n:
                    out.append(["HINCRBY", key, field, n])
        for key in sorted(self.hdel):
            emit("HDEL", key, sorted(self.hdel[key]), 1)
        return out

    def queue(self, pipe: Any, route_key: str | None = None) -> None:
        """Queue every update on a (transactional) pipeline as a few APPLY_COMMANDS calls.

        `route_key` (default: the first key updated) is declared to the script so a cluster routes it to
        the partition's slot; every key of a batch shares that slot."""
        commands = self.commands()
        if not commands:
            return
        route_key = route_key or commands[0][1]
        args: list[Any] = []
        for cmd in commands:
            if len(args) + len(cmd) + 1 > MAX_SCRIPT_ARGS and args:
                pipe.eval(APPLY_COMMANDS, 1, route_key, *args)
                args = []
            args.append(len(cmd))
            args.extend(cmd)
        if args:
            pipe.eval(APPLY_COMMANDS, 1, route_key, *args)

    def __len__(self) -> int:
        return (
            len(self.hset)
            + len(self.zadd)
            + len(self.sadd)
            + len(self.hincr)
            + len(self.zrem)
            + len(self.hdel)
        )
