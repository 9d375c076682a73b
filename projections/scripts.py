"""Lua scripts: each a `.lua` file beside the module that owns it, loaded once, called by its SHA.

A file is named `<command>-<number of keys>.lua` (`-n` when the caller decides how many). Its arguments travel as
one msgpack map in ARGV[1] (`local a = cmsgpack.unpack(ARGV[1])`, then `a.limit`, `a.mode`, …), packed by
`pack_args`, so no script reads a long positional ARGV (the server's msgpack knows no binary strings, so a script
fed binary data takes it as a plain argument stream instead: `queue_argv`). Calls go out as EVALSHA; a server that does not know the
script (restarted, flushed, another cluster node) answers NOSCRIPT and the call is repeated as EVAL, which loads
it. On a pipeline the script is registered with the pipeline, which makes sure the server has it (SCRIPT
EXISTS / LOAD) before the pipeline runs, so a transaction never fails half-way on NOSCRIPT.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

import msgspec
from redis.exceptions import NoScriptError

_packer = msgspec.msgpack.Encoder()


def pack_args(named: dict[str, Any]) -> bytes:
    """The one argument every script takes: its named arguments as a msgpack map."""
    return _packer.encode(named)


class Script:
    """One Lua file of a package, e.g. `Script(__package__, "query_events-n.lua")`."""

    def __init__(self, package: str | None, filename: str) -> None:
        if package is None:
            raise ValueError("Script needs the owning package (pass __package__)")
        self.name = filename
        # `script` and `sha` are the attributes redis-py's pipelines read to load a script before they run
        self.script = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
        self.sha = hashlib.sha1(self.script.encode()).hexdigest()
        stem = filename.rsplit(".", 1)[0]
        count = stem.rsplit("-", 1)[1] if "-" in stem else "n"
        self.numkeys: int | None = None if count == "n" else int(count)

    def _check(self, keys: Sequence[str]) -> None:
        if self.numkeys is not None and len(keys) != self.numkeys:
            raise ValueError(f"{self.name} takes {self.numkeys} keys, got {len(keys)}")

    async def __call__(self, redis: Any, keys: Sequence[str], **named: Any) -> Any:
        """Run on `redis` (a client, not a pipeline) with `named` as its arguments."""
        self._check(keys)
        arg = pack_args(named)
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, arg)
        except NoScriptError:
            return await redis.eval(self.script, len(keys), *keys, arg)

    async def call_argv(self, redis: Any, keys: Sequence[str], argv: Sequence[Any]) -> Any:
        """Run on `redis` (a client) with a plain argument list (see `queue_argv`)."""
        self._check(keys)
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *argv)
        except NoScriptError:
            return await redis.eval(self.script, len(keys), *keys, *argv)

    def queue(self, pipe: Any, keys: Sequence[str], **named: Any) -> None:
        """Queue a call on a pipeline (or a transaction); the pipeline loads the script first if needed."""
        self.queue_argv(pipe, keys, [pack_args(named)])

    def queue_argv(self, pipe: Any, keys: Sequence[str], argv: Sequence[Any]) -> None:
        """Queue a call whose arguments are a plain list (a script that takes a stream of binary-safe strings
        instead of named arguments, e.g. `apply_updates-1.lua`)."""
        self._check(keys)
        pipe.scripts.add(self)
        pipe.evalsha(self.sha, len(keys), *keys, *argv)
