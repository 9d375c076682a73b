"""Import Segment-shaped JSONL — a Segment or RudderStack export, one message per line — through the write path
every HTTP request takes: lines go to `Receiver.receive` as the messages of a `/v1/batch` body, a few hundred at
a time, so validation, normalization, size limits and the log entry (one XADD per batch) are the same code.

What the import adds: each line is checked to be JSON on its own (one broken line must not sink its batch); a
line without a `messageId` gets one derived from its bytes, so importing a file again stores nothing twice
(the fold's messageId dedupe); and timestamps are kept as exported (no skew correction against the import's
clock). Gzip files are read as they stream, told by their `.gz` name or their magic bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec

from .errors import InvalidRequest, PayloadTooLarge
from .receive import BatchRejected, BatchTooLarge, Receiver
from .workspaces import Workspace

GZIP_MAGIC = b"\x1f\x8b"
BATCH_LINES = 500  # messages per log entry, at most (fewer when the body would pass max_request_bytes)
_BODY_HEAD, _BODY_TAIL = b'{"batch":[', b"]}"


class UnreadableFile(InvalidRequest):
    """A file to import cannot be read (missing, not gzip despite its name, truncated)."""


class _MessageIdOnly(msgspec.Struct):
    messageId: str | int | None = None


_probe = msgspec.json.Decoder(_MessageIdOnly)
_any = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


def line_message_id(line: bytes) -> str:
    """The messageId of a line that has none: the same line imported again gets the same id."""
    return "imp-" + hashlib.sha256(line).hexdigest()[:32]


@dataclass(slots=True)
class RejectedLine:
    file: str
    line: int
    reason: str


@dataclass(slots=True)
class ImportResult:
    lines: int = 0  # non-blank lines read
    accepted: int = 0  # appended to the log (messageId duplicates included: the fold stores them once)
    rejected: int = 0
    first_rejected: list[RejectedLine] = field(default_factory=list)

    def reject(self, file: str, line: int, reason: str, keep: int) -> None:
        self.rejected += 1
        if len(self.first_rejected) < keep:
            self.first_rejected.append(RejectedLine(file, line, reason))


@contextmanager
def open_jsonl(path: Path) -> Iterator[tuple[IO[bytes], Callable[[], int]]]:
    """The file's (decompressed) bytes, and how many bytes of the file itself were read so far (for progress)."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below, after the caller's block
    except OSError as exc:
        raise UnreadableFile(f"{path}: {exc.strerror or exc}") from None
    try:
        gzipped = path.suffix == ".gz" or raw.peek(2)[:2] == GZIP_MAGIC
        yield (gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw), raw.tell
    finally:
        raw.close()


class _Batch:
    """Lines on their way into one `/v1/batch` body, with their line numbers."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.numbers: list[int] = []
        self.size = len(_BODY_HEAD) + len(_BODY_TAIL)

    def fits(self, line: bytes, max_lines: int, max_bytes: int) -> bool:
        return not self.lines or (len(self.lines) < max_lines and self.size + len(line) + 1 <= max_bytes)

    def add(self, number: int, line: bytes) -> None:
        self.lines.append(line)
        self.numbers.append(number)
        self.size += len(line) + 1

    def body(self) -> bytes:
        return _BODY_HEAD + b",".join(self.lines) + _BODY_TAIL


async def import_lines(
    receiver: Receiver,
    workspace: Workspace,
    file: str,
    lines: Iterable[bytes],
    result: ImportResult,
    *,
    keep_rejected: int = 20,
    batch_lines: int = BATCH_LINES,
    on_lines: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import `lines` (one message each) into `workspace`, adding to `result`; `on_lines(n)` after each batch."""
    s = receiver.settings
    max_lines = min(batch_lines, s.max_batch_events)
    batch = _Batch()

    async def send() -> None:
        nonlocal batch
        if batch.lines:
            await _receive_batch(receiver, workspace, file, batch, result, keep_rejected)
            if on_lines is not None:
                on_lines(len(batch.lines))
        batch = _Batch()

    number = 0
    try:
        for number, raw_line in enumerate(lines, 1):  # noqa: B007 - the number names where reading failed
            line = raw_line.strip()
            if not line:
                continue
            result.lines += 1
            try:
                line = _with_message_id(line)
            except (msgspec.DecodeError, RecursionError) as exc:
                result.reject(file, number, f"not valid JSON: {exc}", keep_rejected)
                continue
            if not batch.fits(line, max_lines, s.max_request_bytes):
                await send()
            batch.add(number, line)
    except (OSError, EOFError, zlib.error) as exc:
        await send()  # what was read before the damage is imported
        raise UnreadableFile(f"{file}: cannot read past line {number}: {exc}") from None
    await send()
    return result


def _with_message_id(line: bytes) -> bytes:
    """The line as is when it names its messageId (or is not an object: the receiver says why it is refused),
    else with a messageId derived from its bytes."""
    try:
        if _probe.decode(line).messageId not in (None, ""):
            return line
    except msgspec.ValidationError:
        return line
    message = _any.decode(line)
    message["messageId"] = line_message_id(line)
    return _encode(message)


async def _receive_batch(
    receiver: Receiver, workspace: Workspace, file: str, batch: _Batch, result: ImportResult, keep: int
) -> None:
    try:
        receipt = await receiver.receive(
            batch.body(), kind_hint=None, batch=True, workspace=workspace, correct_skew=False
        )
    except (BatchRejected, BatchTooLarge) as exc:
        rejections = exc.rejected
        accepted = 0
    except (
        InvalidRequest,
        PayloadTooLarge,
    ) as exc:  # the body as a whole: every line of it shares the reason
        for number in batch.numbers:
            result.reject(file, number, exc.message, keep)
        return
    else:
        rejections = receipt.rejected
        accepted = receipt.accepted
    result.accepted += accepted
    for r in rejections:
        result.reject(file, batch.numbers[r.index], f"{r.field}: {r.message}", keep)
