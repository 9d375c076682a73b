"""`Updates`: the key changes one fold batch makes, grouped so a batch costs commands per key, not per event."""

from __future__ import annotations

from collections import defaultdict
from typing import Any


class Updates:
    def __init__(self) -> None:
        self.hset: dict[str, dict[str, str]] = defaultdict(dict)
        self.zadd: dict[str, dict[str, float]] = defaultdict(dict)
        self.zrem: dict[str, set[str]] = defaultdict(set)
        self.sadd: dict[str, set[str]] = defaultdict(set)
        self.hincr: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

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
            for field, n in self.hincr[key].items():
                if n:
                    pipe.hincrby(key, field, n)

    def __len__(self) -> int:
        return len(self.hset) + len(self.zadd) + len(self.sadd) + len(self.hincr) + len(self.zrem)
