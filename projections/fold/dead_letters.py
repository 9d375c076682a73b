"""Dead letters: log entries the fold could not read, kept per partition in the stream `sf:{p}:dlq` with the reason.

The fold writes them (`fold._commit`): fields `entry` (the log entry's id), `reason`, then the entry's own fields.
Here they are listed, read, replayed — the entry's fields appended to the log again as a new entry, and the dead
letter removed, in one transaction, so the fold folds it (after a fix: a version that can read it) — or dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import WatchError

from ingest import keys as log_keys
from ingest.errors import NotFound, StreamfoldError
from ingest.log import F_WORKSPACE

from ..errors import PoisonEntry
from .fold import decode_entry

F_ENTRY, F_REASON = b"entry", b"reason"


class DeadLetterNotFound(NotFound):
    """No dead letter with that id in that partition (never there, replayed or dropped)."""


class StillUnreadable(StreamfoldError):
    """A replay was asked for an entry this version cannot read either: it would come straight back."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    id: str  # its id in the dead-letter stream
    entry: str  # the id the entry had in the log
    reason: str
    fields: dict[bytes, bytes]  # the log entry's own fields, as they were

    @property
    def ref(self) -> str:
        """How the CLI names it: `partition/id`."""
        return f"{self.partition}/{self.id}"

    @property
    def workspace(self) -> str | None:
        raw = self.fields.get(F_WORKSPACE)
        try:
            return raw.decode() if raw is not None else None
        except UnicodeDecodeError:
            return None


def _text(raw: bytes | None) -> str:
    return raw.decode(errors="replace") if raw is not None else ""


def _dead_letter(partition: int, dlq_id: bytes | str, raw: dict[bytes, bytes]) -> DeadLetter:
    fields = {k: v for k, v in raw.items() if k not in (F_ENTRY, F_REASON)}
    ident = dlq_id.decode() if isinstance(dlq_id, bytes) else dlq_id
    return DeadLetter(partition, ident, _text(raw.get(F_ENTRY)), _text(raw.get(F_REASON)), fields)


async def list_dead_letters(redis: Redis, prefix: str, partitions: Sequence[int]) -> list[DeadLetter]:
    """Every dead letter of `partitions`, oldest first within each; one round trip."""
    pipe = redis.pipeline(transaction=False)
    for p in partitions:
        pipe.xrange(log_keys.dead_letters(prefix, p))
    out = []
    for p, entries in zip(partitions, await pipe.execute(), strict=True):
        out.extend(_dead_letter(p, dlq_id, raw) for dlq_id, raw in entries)
    return out


async def read_dead_letter(redis: Redis, prefix: str, partition: int, dlq_id: str) -> DeadLetter:
    found = await redis.xrange(log_keys.dead_letters(prefix, partition), dlq_id, dlq_id)
    if not found:
        raise DeadLetterNotFound(f"no dead letter {partition}/{dlq_id}")
    return _dead_letter(partition, *found[0])


def check_readable(letter: DeadLetter) -> None:
    """Raise `StillUnreadable` when this version's fold would dead-letter the entry again."""
    try:
        decode_entry(letter.fields)
    except PoisonEntry as exc:
        raise StillUnreadable(
            f"{letter.ref} still cannot be read by this version ({exc.message}); replay it after a fix "
            "(--force replays it anyway)"
        ) from None


async def replay_dead_letter(
    redis: Redis, prefix: str, partition: int, dlq_id: str, *, force: bool = False
) -> str:
    """Append the entry's fields to the log as a new entry and remove the dead letter, atomically; returns the new
    entry's id. Refuses (`StillUnreadable`) an entry this version cannot read, unless `force`."""
    log, dlq = log_keys.log(prefix, partition), log_keys.dead_letters(prefix, partition)
    while True:
        async with redis.pipeline(transaction=True) as pipe:
            # watched: a concurrent replay or drop of the same letter aborts this one, which then finds it gone
            await pipe.watch(dlq)
            found = await pipe.xrange(dlq, dlq_id, dlq_id)
            if not found:
                raise DeadLetterNotFound(f"no dead letter {partition}/{dlq_id}")
            letter = _dead_letter(partition, *found[0])
            if not force:
                check_readable(letter)
            pipe.multi()
            pipe.xadd(log, letter.fields)  # type: ignore[arg-type]
            pipe.xdel(dlq, dlq_id)
            try:
                new_id, _ = await pipe.execute()
            except WatchError:
                continue  # the stream changed (another dead letter, say): look again
        return new_id.decode() if isinstance(new_id, bytes) else str(new_id)


async def drop_dead_letter(redis: Redis, prefix: str, partition: int, dlq_id: str) -> None:
    if not await redis.xdel(log_keys.dead_letters(prefix, partition), dlq_id):
        raise DeadLetterNotFound(f"no dead letter {partition}/{dlq_id}")
