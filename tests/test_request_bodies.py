"""A request's memory is bounded before it is authenticated: bodies are read as they arrive, after the key sent
in the headers was checked, cut off past the size limit and after the body timeout. Over a real socket."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import select
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from .conftest import LiveServer, WorkspaceKeys

MB = 1024 * 1024
TIMEOUT = 2.0  # the test server's body timeout (30 s by default)

# every write path that reads a body, and how a key reaches it without the body
PATHS = [
    "/v1/batch",
    "/v1/track",
    "/v1/t",
    "/beacon/v1/batch",
    "/v1/sources/crm/sync",
    "/v1/sources/email/sendgrid",
]


def key_headers(path: str, key: str) -> tuple[str, dict[str, str]]:
    if path.startswith("/beacon/"):
        return f"{path}?writeKey={key}", {"Content-Type": "text/plain"}
    return path, {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def open_request(
    port: int, target: str, headers: dict[str, str], content_length: int | None
) -> socket.socket:
    """Send a POST's head; its body is left to the test. Without a length the body is sent chunked."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += (
        "Transfer-Encoding: chunked\r\n"
        if content_length is None
        else f"Content-Length: {content_length}\r\n"
    )
    sock.sendall((head + "\r\n").encode())
    return sock


def chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield f"{size:x}\r\n".encode() + b"x" * size + b"\r\n"
    yield b"0\r\n\r\n"


def plain(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"x" * size


def send_until_answered(sock: socket.socket, body: Iterator[bytes], timeout: float = 30) -> int:
    """Send the body while watching for an answer; returns how many bytes were sent when the server answered
    (or closed), or all of them if it never answered first."""
    sock.setblocking(False)
    deadline = time.monotonic() + timeout
    sent = 0
    try:
        for chunk in body:
            view = memoryview(chunk)
            while view:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"neither sent nor answered in {timeout} s ({sent} bytes sent)"
                readable, writable, _ = select.select([sock], [sock], [], remaining)
                if readable:
                    return sent
                if writable:
                    try:
                        n = sock.send(view)
                    except (BrokenPipeError, ConnectionResetError):
                        return sent
                    view = view[n:]
                    sent += n
        return sent
    finally:
        sock.setblocking(True)


def response(sock: socket.socket, timeout: float = 10) -> tuple[int, dict[str, str], dict]:
    sock.settimeout(timeout)
    r = http.client.HTTPResponse(sock)
    r.begin()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(r.read() or b"{}")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("who", ["unknown", "read key"])
async def test_a_huge_body_with_a_bad_key_is_refused_before_it_is_sent(live_server, workspace, path, who):
    key = "wk_nope" if who == "unknown" else workspace.read_key
    target, headers = key_headers(path, key)
    total = 64 * MB
    sock = open_request(live_server.port, target, headers, content_length=total)
    with sock:
        sent = await asyncio.to_thread(send_until_answered, sock, plain(total))
        status, answer_headers, answer = response(sock)
    assert status == (401 if who == "unknown" else 403) and answer["success"] is False
    assert sent < 16 * MB, f"answered only after {sent} of {total} bytes"
    assert answer_headers.get("connection") == "close"


@pytest.mark.parametrize("path", PATHS)
async def test_a_body_over_the_limit_is_413_as_soon_as_it_passes_it(live_server, workspace, path):
    limit = live_server.settings.max_request_bytes
    target, headers = key_headers(path, workspace.write_key)
    total = 64 * MB
    sock = open_request(live_server.port, target, headers, content_length=None)  # no length to judge it by
    with sock:
        sent = await asyncio.to_thread(send_until_answered, sock, chunked(total))
        status, answer_headers, answer = response(sock)
    assert status == 413 and answer["code"] == "payload_too_large"
    assert f"{limit}-byte limit" in answer["message"]
    assert sent < 16 * MB, f"answered only after {sent} of {total} bytes"
    assert answer_headers.get("connection") == "close"


async def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_read(live_server, workspace):
    target, headers = key_headers("/v1/batch", workspace.write_key)
    with open_request(live_server.port, target, headers, content_length=64 * MB) as sock:
        status, _, answer = response(sock)
    assert status == 413 and "512000-byte limit" in answer["message"]


async def test_a_gzip_body_counts_its_compressed_size_too(live_server, workspace):
    target, headers = key_headers("/v1/batch", workspace.write_key)
    headers["Content-Encoding"] = "gzip"
    sock = open_request(live_server.port, target, headers, content_length=None)
    with sock:
        await asyncio.to_thread(send_until_answered, sock, chunked(8 * MB))
        status, _, answer = response(sock)
    assert status == 413 and answer["code"] == "payload_too_large"


@pytest_asyncio.fixture
async def impatient_server(settings, redis) -> AsyncIterator[LiveServer]:
    server = await asyncio.to_thread(lambda: LiveServer(settings.with_(body_timeout_seconds=TIMEOUT)).start())
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


def track() -> dict[str, object]:
    return {"type": "track", "event": "e", "userId": "u1", "messageId": str(uuid.uuid4())}


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/sources/crm/sync"])
async def test_a_stalled_body_is_408_after_the_timeout_and_blocks_no_one(impatient_server, workspace, path):
    ws: WorkspaceKeys = workspace
    target, headers = key_headers(path, ws.write_key)
    started = time.monotonic()
    stalled = open_request(impatient_server.port, target, headers, content_length=1000)
    with stalled:
        stalled.sendall(b'{"batch": [')  # ... and nothing more
        async with httpx.AsyncClient(base_url=impatient_server.url, timeout=10) as client:
            for _ in range(3):  # other clients are served meanwhile
                r = await client.post("/v1/track", json=track(), auth=(ws.write_key, ""))
                assert r.status_code == 200, r.text
        waiting, _, _ = select.select([stalled], [], [], 0)
        assert not waiting and time.monotonic() - started < TIMEOUT, "the others were not served meanwhile"
        status, answer_headers, answer = await asyncio.to_thread(response, stalled, TIMEOUT + 10)
        elapsed = time.monotonic() - started
        assert status == 408 and answer["code"] == "request_timeout", answer
        assert f"{TIMEOUT:g} seconds" in answer["message"]
        assert TIMEOUT <= elapsed < TIMEOUT + 5
        assert answer_headers.get("connection") == "close"
        assert stalled.recv(1) == b""  # and the connection is closed


async def test_a_body_trickling_in_is_cut_off_at_the_timeout_too(impatient_server, workspace):
    target, headers = key_headers("/v1/batch", workspace.write_key)
    started = time.monotonic()

    def trickle(sock: socket.socket) -> None:
        for _ in range(int(TIMEOUT * 10) + 20):
            readable, _, _ = select.select([sock], [], [], 0.1)  # one byte every 0.1 s, until answered
            if readable:
                return
            sock.sendall(b" ")

    with open_request(impatient_server.port, target, headers, content_length=10_000) as sock:
        await asyncio.to_thread(trickle, sock)
        status, _, answer = response(sock)
    assert status == 408 and answer["code"] == "request_timeout"
    assert time.monotonic() - started < TIMEOUT + 5


async def test_a_good_body_sent_in_pieces_is_accepted(live_server, workspace):
    target, headers = key_headers("/v1/batch", workspace.write_key)
    body = json.dumps({"batch": [track() for _ in range(200)]}).encode()
    pieces = (
        f"{len(p):x}\r\n".encode() + p + b"\r\n"
        for p in (body[i : i + 1000] for i in range(0, len(body), 1000))
    )
    with open_request(live_server.port, target, headers, content_length=None) as sock:
        for piece in pieces:
            sock.sendall(piece)
        sock.sendall(b"0\r\n\r\n")
        status, answer_headers, answer = response(sock)
    assert (status, answer) == (200, {"success": True})
    assert "connection" not in answer_headers  # kept alive
