"""`Updates`: the key changes one fold batch makes, grouped so a batch costs commands per key, not per event."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

# HINCRBY takes one field; a batch touches many fields of one hash (a day of the counters cube), so add
# them in one server-side call per hash instead of one command per field.
HINCRBY_MANY = """
for i = 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 0
"""


class Updates:
    def __init__(self) -> None:
        self.hset: dict[str, dict[str, str]] = defaultdict(dict)
        self.zadd: dict[str, dict[str, float]] = defaultdict(dict)
        self.zrem: dict[str, set[str]] = defaultdict(set)
        self.sadd: dict[str, set[str]] = defaultdict(set)
        self.hincr: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.hdel: dict[str, set[str]] = defaultdict(set)  # e.g. counter cells moved to zero

    def queue(self, pipe: Any) -> None:
        """Queue every update on a (transactional) pipeline, in a deterministic order."""
        for key in sorted(self.zrem):
            if self.zrem[key]:
                pipe.zrem(key, *sorted(self.zrem[key]))
        for key in sorted(self.hset):
            if self.hset[key]:
                pipe.hset(key, mapping=self.hset[key])
        for key in sorted(self.zadd):
            if self.zadd[key]:
                pipe.zadd(key, self.zadd[key])
        for key in sorted(self.sadd):
            if self.sadd[key]:
                pipe.sadd(key, *sorted(self.sadd[key]))
        for key in sorted(self.hincr):
            args = [x for field, n in sorted(self.hincr[key].items()) if n for x in (field, n)]
            if len(args) == 2:
                pipe.hincrby(key, args[0], args[1])
            elif args:
                pipe.eval(HINCRBY_MANY, 1, key, *args)
        for key in sorted(self.hdel):
            if self.hdel[key]:
                pipe.hdel(key, *sorted(self.hdel[key]))

    def __len__(self) -> int:
        return (
            len(self.hset)
            + len(self.zadd)
            + len(self.sadd)
            + len(self.hincr)
            + len(self.zrem)
            + len(self.hdel)
        )
