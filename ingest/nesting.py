"""The JSON nesting limit, checked on the raw bytes before anything decodes them.

msgspec decodes recursively, so a body nested thousands of levels deep exhausts the stack (RecursionError);
every ingest body is refused past `MAX_NESTING` levels of arrays and objects, naming the field that is too deep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import accumulate

import msgspec

from .errors import InvalidRequest

# An event may nest arrays and objects this many levels, the event object itself being level 1 (a batch
# counts from each message: its `{"batch": [...]}` wrapper adds two levels that do not count).
MAX_NESTING = 64
TOO_DEEP = f"nests deeper than {MAX_NESTING} levels of arrays and objects"

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# every byte but the four brackets is deleted; openers become "(" and closers ")"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_TO_PARENS = bytes.maketrans(b"[]{}", b"()()")
_TO_STEPS = bytes.maketrans(b"()", b"\x01\xff")  # +1 / -1 as signed bytes


def nesting_exceeds(data: bytes, limit: int) -> bool:
    """Whether some array or object in `data` lies more than `limit` levels deep; exact, and cheap when not.

    Fewer openers than the limit settle it at once (one event). Otherwise strings are blanked and the bracket
    sequence is reduced by removing innermost `()` pairs, one level per pass: a balanced sequence empties in
    at most `limit` passes exactly when it nests no deeper. Anything else (too deep, or not valid JSON) is
    decided by the running depth, which also bounds what a decoder would reach before a syntax error."""
    if data.count(b"{") + data.count(b"[") <= limit:
        return False
    parens = _STRING.sub(b'""', data).translate(_TO_PARENS, _NOT_BRACKETS)
    rest = parens
    for _ in range(limit):
        shorter = rest.replace(b"()", b"")
        if not shorter:
            return False
        if len(shorter) == len(rest):
            break
        rest = shorter
    return max(accumulate(memoryview(parens.translate(_TO_STEPS)).cast("b")), default=0) > limit


# strings, runs of openers, runs of closers, and runs of everything else (scalars, commas, colons, blanks)
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]+|[\]}]+|[^"\[\]{}]+', re.DOTALL)


@dataclass(slots=True)
class _Frame:
    start: int
    is_array: bool
    index: int = 0
    last_string: bytes | None = None
    key: bytes | None = None
    end: int = -1


@dataclass(slots=True)
class TooDeep:
    """A place nested past the limit: its path from the root (at most `levels` steps, e.g. `batch`, 3,
    `properties`), and the byte span of the array or object at the path's last step."""

    path: tuple[str | int, ...]
    _frame: _Frame = field(repr=False)

    @property
    def span(self) -> tuple[int, int]:
        return self._frame.start, self._frame.end

    @property
    def where(self) -> str:
        return path_text(self.path)


def path_text(path: tuple[str | int, ...]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out or "body"


def _key_text(raw: bytes | None) -> str:
    if raw is None:
        return "?"
    try:
        return str(msgspec.json.decode(raw))[:100]
    except msgspec.DecodeError:
        return raw[1:-1].decode("utf-8", "replace")[:100]


def find_too_deep(data: bytes, limit: int, levels: int) -> list[TooDeep]:
    """Every place of `data` nested past `limit`, once per path of `levels` steps, in document order.

    A plain scan in Python, meant for the rare body `nesting_exceeds` refused: frames are kept only for the
    first `levels` levels, deeper runs of brackets are counted, not walked."""
    frames: list[_Frame] = []
    found: dict[tuple[str | int, ...], TooDeep] = {}
    depth = 0
    for m in _TOKEN.finditer(data):
        tok = m.group()
        first = tok[0]
        if first == 0x22:  # a string: remembered as the candidate key of the object it is directly in
            if frames and depth == len(frames):
                frames[-1].last_string = tok
        elif first in (0x5B, 0x7B):  # [ {
            start = m.start()
            for i in range(min(len(tok), levels - depth) if depth < levels else 0):
                frames.append(_Frame(start + i, tok[i] == 0x5B))
            deeper = depth + len(tok)
            if depth <= limit < deeper:
                path = tuple(f.index if f.is_array else _key_text(f.key) for f in frames)
                if path not in found and frames:
                    found[path] = TooDeep(path, frames[-1])
            depth = deeper
        elif first in (0x5D, 0x7D):  # ] }
            shallower = max(depth - len(tok), 0)
            while len(frames) > shallower:
                closed = frames.pop()  # it was at depth len(frames) + 1: its closer is that far into the run
                closed.end = m.start() + depth - len(frames)
            depth = shallower
        elif frames and depth == len(frames):
            top = frames[-1]
            if top.is_array:
                top.index += tok.count(b",")
            elif b":" in tok:
                top.key = top.last_string
    for f in frames:
        f.end = len(data)
    return list(found.values())


def too_deep_field(data: bytes, limit: int = MAX_NESTING, levels: int = 1) -> str:
    """The path (at most `levels` steps) of the first place of `data` nested past `limit`."""
    places = find_too_deep(data, limit, levels)
    return places[0].where if places else "body"


def check_nesting(data: bytes, limit: int = MAX_NESTING, levels: int = 3) -> None:
    """Refuse a whole document nested past `limit` with a 400 naming the field (at most `levels` steps)."""
    if nesting_exceeds(data, limit):
        where = too_deep_field(data, limit, levels)
        raise InvalidRequest(f"{where}: {TOO_DEEP}", details={"field": where})


def prune_too_deep(data: bytes, lists: tuple[str, ...]) -> tuple[bytes, dict[tuple[str, int], str]]:
    """For a body `{"<list>": [record, ...], ...}` whose records are judged one by one: cut out every record
    nested past `MAX_NESTING` (counted from the record), leaving `{}`, so that the rest can be decoded.

    Returns the pruned body and the field that is too deep in each cut record, by (list, index). Anything else
    too deep is refused with a 400 naming it."""
    out: list[bytes] = []
    cut: dict[tuple[str, int], str] = {}
    pos = 0
    for place in find_too_deep(data, MAX_NESTING + 2, levels=3):
        name, index = place.path[0], place.path[1] if len(place.path) > 1 else None
        if name not in lists or not isinstance(index, int):
            where = path_text(place.path[:1])
            raise InvalidRequest(f"{where}: {TOO_DEEP}", details={"field": where})
        if (str(name), index) in cut:
            continue
        start, end = place.span
        out += (data[pos:start], b"{}")
        pos = end
        cut[(str(name), index)] = path_text(place.path[2:])
    out.append(data[pos:])
    return b"".join(out), cut
