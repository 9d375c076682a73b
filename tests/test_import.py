"""`streamfold import FILE… --workspace W`: Segment-shaped JSONL through the ingest path, plain or gzip; bad lines
reported by line number and the good ones kept; importing again stores nothing twice."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
from pathlib import Path

from ingest import keys as log_keys
from ingest.importer import line_message_id

from .cli_helpers import common_flags, streamfold
from .conftest import WorkspaceKeys


def auth(ws: WorkspaceKeys) -> dict[str, str]:
    return {"Authorization": f"Bearer {ws.read_key}"}


async def count(client, ws: WorkspaceKeys, **params: object) -> int:
    r = await client.get("/v1/events", params={"count_only": "true", **params}, headers=auth(ws))
    assert r.status_code == 200, r.text
    return r.json()["count"]


def segment_line(i: int) -> dict:
    """A message as Segment's exports write it (timestamp already corrected; sentAt and receivedAt kept)."""
    kind = ("track", "page", "identify")[i % 3]
    msg = {
        "type": kind,
        "messageId": f"seg-{i}",
        "anonymousId": f"anon-{i % 997}",
        "timestamp": "2025-03-01T10:00:00.000Z",
        "sentAt": "2025-03-01T10:00:01.000Z",
        "receivedAt": "2025-03-01T10:00:01.200Z",
        "context": {"library": {"name": "analytics.js", "version": "5.2.0"}},
    }
    if kind == "track":
        msg.update(event="Order Completed", properties={"revenue": i % 50})
    elif kind == "page":
        msg.update(name="Pricing", properties={"url": f"https://example.com/p/{i % 40}"})
    else:
        msg.update(userId=f"user-{i % 300}", traits={"plan": "pro"})
    return msg


def write_jsonl(path: Path, lines: list[str | dict]) -> Path:
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


async def run_import(settings, ws: WorkspaceKeys, *files: Path) -> subprocess.CompletedProcess[str]:
    """The command in a thread, so the test's applier keeps folding (and renewing its leases) meanwhile."""
    args = ("import", *map(str, files), "--workspace", ws.id, *common_flags(settings))
    return await asyncio.to_thread(streamfold, *args, timeout=300)


async def test_importing_100k_lines_twice_stores_100k_events(
    client, workspace, settings, redis, folded, tmp_path
):
    n = 100_000
    listed = sum(1 for i in range(n) if i % 3 != 2)  # identify calls are not listed events
    path = write_jsonl(tmp_path / "export.jsonl", [segment_line(i) for i in range(n)])

    first = await run_import(settings, workspace, path)
    assert first.returncode == 0, first.stderr
    assert f"{path}: {n} lines, {n} accepted, 0 rejected" in first.stdout
    stream = log_keys.log(settings.key_prefix, log_keys.partition_of(workspace.id, settings.partitions))
    assert await redis.xlen(stream) == n // 500  # one log entry per 500 lines, not one per line
    await folded(timeout=240)
    assert await count(client, workspace) == listed

    again = await run_import(settings, workspace, path)
    assert again.returncode == 0, again.stderr
    await folded(timeout=240)
    assert await count(client, workspace) == listed  # every messageId was stored before
    assert await count(client, workspace, event_type="Order Completed") == sum(
        1 for i in range(n) if i % 3 == 0
    )


async def test_imported_events_keep_their_exported_timestamps(client, workspace, settings, folded, tmp_path):
    path = write_jsonl(tmp_path / "one.jsonl", [segment_line(0)])
    assert (await run_import(settings, workspace, path)).returncode == 0
    await folded()
    r = await client.get("/v1/events", headers=auth(workspace))
    (event,) = r.json()["events"]
    assert event["timestamp"].startswith("2025-03-01T10:00:00")  # not moved to the time of the import


async def test_a_gzip_file_is_read_by_its_name_or_its_magic_bytes(
    client, workspace, settings, folded, tmp_path
):
    named = write_jsonl(tmp_path / "a.jsonl.gz", [segment_line(i) for i in range(0, 30)])
    unnamed = tmp_path / "b.export"
    unnamed.write_bytes(
        gzip.compress(b"\n".join(json.dumps(segment_line(i)).encode() for i in range(30, 60)))
    )
    out = await run_import(settings, workspace, named, unnamed)
    assert out.returncode == 0, out.stderr
    assert f"{named}: 30 lines, 30 accepted, 0 rejected" in out.stdout
    assert f"{unnamed}: 30 lines, 30 accepted, 0 rejected" in out.stdout
    await folded()
    assert await count(client, workspace) == 40


async def test_bad_lines_are_reported_with_their_line_numbers_and_the_good_ones_kept(
    client, workspace, settings, folded, tmp_path
):
    lines: list[str | dict] = [
        segment_line(i) for i in range(6)
    ]  # track, page, identify, track, page, identify
    lines[1] = '{"type": "page", "anonymousId": "a", broken'  # line 2: not JSON
    lines[3] = {"type": "track", "event": "No One", "messageId": "x"}  # line 4: nobody
    lines.insert(5, "")  # a blank line is no message, but still a line
    lines.append({"type": "track", "anonymousId": "a", "event": "big", "properties": {"x": "y" * 40_000}})
    lines.append("[1, 2]")
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    out = await run_import(settings, workspace, path)
    assert out.returncode == 0, out.stderr
    assert f"{path}: 8 lines, 4 accepted, 4 rejected" in out.stdout
    report = [line.strip() for line in out.stdout.splitlines() if line.startswith("  line ")]
    assert [r.split(":")[0] for r in report] == ["line 2", "line 4", "line 8", "line 9"]
    assert "not valid JSON" in report[0] and "userId" in report[1]
    assert "32768" in report[2] and "object" in report[3]
    await folded()
    assert (
        await count(client, workspace) == 2
    )  # the track of line 1, the page of line 5 (identifies: not listed)


async def test_lines_without_a_message_id_get_one_from_their_content(
    client, workspace, settings, folded, tmp_path
):
    no_id = {"type": "track", "anonymousId": "a", "event": "Imported", "timestamp": "2025-01-01T00:00:00Z"}
    other = {**no_id, "event": "Other"}
    path = write_jsonl(tmp_path / "no-ids.jsonl", [no_id, other, no_id])  # lines 1 and 3 are the same message
    for _ in range(2):
        assert (await run_import(settings, workspace, path)).returncode == 0
    await folded()
    assert await count(client, workspace) == 2
    r = await client.get("/v1/events", params={"event_type": "Imported"}, headers=auth(workspace))
    (event,) = r.json()["events"]
    detail = await client.get(f"/v1/events/{event['_id']}", headers=auth(workspace))
    assert detail.json()["event"]["message_id"] == line_message_id(json.dumps(no_id).encode())


def test_import_misuse_is_one_line(settings, tmp_path):
    missing = streamfold("import", str(tmp_path / "nope.jsonl"), "--workspace", "w", *common_flags(settings))
    assert (
        missing.returncode == 2
        and missing.stderr.strip() == f"error: {tmp_path / 'nope.jsonl'}: no such file"
    )
    path = write_jsonl(tmp_path / "x.jsonl", [segment_line(0)])
    unknown = streamfold("import", str(path), "--workspace", "no-such-ws", *common_flags(settings))
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "no-such-ws" in unknown.stderr
    fake = tmp_path / "fake.jsonl.gz"
    fake.write_text(json.dumps(segment_line(0)))
    out = streamfold("import", str(fake), "--workspace", "no-such-ws", *common_flags(settings))
    assert out.returncode == 2 and "Traceback" not in out.stderr
