"""Identifiers: ULIDs (time-ordered, Crockford base32) for events, contacts, companies and workspaces."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits → 2 characters
_SHIFTS = range(120, -1, -10)  # 26 characters = 13 pairs = 130 bits, enough for a 128-bit ULID


def ulid(ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds, 80 random bits."""
    if ms is None:
        ms = time.time_ns() // 1_000_000
    return _encode((ms << 80) | int.from_bytes(os.urandom(10), "big"))


def ulids(n: int, ms: int) -> list[str]:
    """`n` ULIDs of the same millisecond in increasing order (a request's events keep their order)."""
    if n == 1:  # what browsers send: one event per request
        return [ulid(ms)]
    # Clear the low 24 random bits so adding up to 16M never carries past them: only the last five
    # characters (bits 0–24) differ between the ids, so encode the shared prefix once.
    base = ((ms << 80) | int.from_bytes(os.urandom(10), "big")) & ~0xFFFFFF
    head, bit24 = _encode(base)[:21], base & (1 << 24)
    a = _ALPHABET
    return [
        head
        + a[(v := bit24 | i) >> 20]
        + a[(v >> 15) & 31]
        + a[(v >> 10) & 31]
        + a[(v >> 5) & 31]
        + a[v & 31]
        for i in range(n)
    ]


def _encode(value: int) -> str:
    pairs = _PAIRS
    return "".join([pairs[(value >> s) & 1023] for s in _SHIFTS])


def event_id(u: str) -> str:
    return f"evt_{u}"


def new_token(nbytes: int = 24) -> str:
    """A URL-safe random secret (API keys)."""
    import base64

    return base64.urlsafe_b64encode(os.urandom(nbytes)).decode().rstrip("=")
