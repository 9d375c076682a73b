"""`streamfold serve` on the embedded Valkey: starts with one command, stops cleanly, keeps its data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from api.embedded import PID_FILE, free_port, process_info


def _start(data_dir: Path, port: int, *, own_group: bool = False) -> subprocess.Popen[str]:
    """`streamfold serve --demo`; with `own_group` in a process group of its own (so a test can kill it all)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFOLD_")}
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--demo", "--data-dir", str(data_dir), "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=own_group,
    )  # fmt: skip


def _wait_healthy(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # sleep-ok: polling the server's health endpoint until it answers
    raise TimeoutError("serve did not come up")


def _wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while (r := httpx.get(f"{url}/readyz", timeout=5)).status_code != 200:
        assert proc.poll() is None and time.monotonic() < deadline, r.text
        time.sleep(0.05)  # sleep-ok: polling until the fold process holds its leases


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return out


def _wait_count(url: str, read_key: str, n: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/v1/events", params={"count_only": "true"}, headers={"X-API-Key": read_key})
        if r.status_code == 200 and r.json()["count"] == n:
            return
        time.sleep(0.05)  # sleep-ok: polling the query API for the folded count
    raise TimeoutError(f"count never reached {n}")


def test_serve_embedded_demo_survives_a_restart(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(data_dir, port)
    try:
        _wait_healthy(url, proc)
        demo = json.loads((data_dir / "demo-keys.json").read_text())
        write = next(k["key"] for k in demo["keys"] if "write" in k["scopes"])
        read = next(k["key"] for k in demo["keys"] if "events:read" in k["scopes"])
        r = httpx.post(f"{url}/v1/track", json={"userId": "u1", "event": "signed_up"}, auth=(write, ""))
        assert r.json() == {"success": True}
        _wait_count(url, read, 1)
        created = subprocess.run(
            [sys.executable, "-m", "api.cli", "workspace", "create", "acme", "--json", "--data-dir", str(data_dir)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        keys = json.loads(created.stdout)["keys"]
        assert {tuple(k["scopes"]) for k in keys} == {
            ("write", "crm:write"),
            ("events:read", "contacts:read", "attribution:read"),
        }
    finally:
        out = _stop(proc)
    assert "Demo workspace" in out and write in out and "curl" in out
    valkey_url = data_dir / "redis.url"
    assert not valkey_url.exists(), "the embedded Valkey was not shut down"

    proc = _start(data_dir, port)
    try:
        _wait_healthy(url, proc)
        _wait_count(url, read, 1)  # the second serve found the first one's data
    finally:
        out = _stop(proc)
    assert write in out  # the demo keys are printed again


def _serve(settings, *flags: str, port: int, session: bool = False) -> subprocess.Popen[str]:
    from .cli_helpers import clean_env, common_flags

    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", *common_flags(settings), "--port", str(port), *flags],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=session,
    )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_serve_cleanly(settings, redis, sig):
    port = free_port()
    proc = _serve(settings, port=port)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Streamfold is running" in out


def test_ctrl_c_stops_serve_with_workers_cleanly(settings, redis):
    port = free_port()
    proc = _serve(settings, "--workers", "2", port=port, session=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        _wait_ready(
            f"http://127.0.0.1:{port}", proc
        )  # the HTTP workers see the sibling fold process's leases
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches every process of the group
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Streamfold is running" in out


def test_json_logs_are_one_object_per_line_access_log_included(settings, redis):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(settings, "--log-format", "json", "--access-log", port=port)
    try:
        _wait_healthy(url, proc)
        assert httpx.post(f"{url}/v1/track", json={"event": "x", "userId": "u"}).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    records = [json.loads(line) for line in err.splitlines()]
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert {"uvicorn.error", "uvicorn.access"} <= {r["logger"] for r in records}
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any(r["path"] == "/v1/track" and r["status"] == 401 and r["method"] == "POST" for r in access)
    assert any(r["path"] == "/healthz" and r["status"] == 200 for r in access)


def _valkey_pid(data_dir: Path) -> int:
    return int(json.loads((data_dir / PID_FILE).read_text())["pid"])


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while process_info(pid) is not None:  # a zombie nobody reaps counts as gone: it holds no port, no file
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # sleep-ok: polling for another process to exit
    return True


def _kill(pid: int) -> None:
    """Clean up after a failed test: the valkey-server it started must not be left behind."""
    if process_info(pid) is not None:
        os.kill(pid, signal.SIGKILL)


def _keys(data_dir: Path) -> tuple[str, str]:
    demo = json.loads((data_dir / "demo-keys.json").read_text())
    write = next(k["key"] for k in demo["keys"] if "write" in k["scopes"])
    read = next(k["key"] for k in demo["keys"] if "events:read" in k["scopes"])
    return write, read


def test_sigkill_of_serves_process_group_takes_the_embedded_valkey_with_it(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(data_dir, port, own_group=True)
    valkey = None
    try:
        _wait_healthy(url, proc)
        valkey = _valkey_pid(data_dir)
        assert process_info(valkey) is not None
        write, read = _keys(data_dir)
        r = httpx.post(f"{url}/v1/track", json={"userId": "u1", "event": "kept"}, auth=(write, ""))
        assert r.json() == {"success": True}
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group; Valkey runs in a session of its own
        proc.communicate(timeout=30)
        assert _gone_within(valkey, 15), "the embedded valkey-server outlived serve"

        proc = _start(data_dir, port, own_group=True)  # the port and the data dir are free again
        _wait_healthy(url, proc)
        _wait_count(url, read, 1)  # and the acknowledged event is there
    finally:
        _stop(proc)
        if valkey is not None:
            _kill(valkey)


ORPHAN_MAKER = """
import signal, sys
from api.embedded import EmbeddedValkey
valkey = EmbeddedValkey(sys.argv[1], int(sys.argv[2]), appendonly=True, die_with_parent=False)
valkey.start()
print(valkey.proc.pid, flush=True)
signal.pause()
"""


def test_serve_stops_an_orphaned_valkey_on_its_data_dir_and_takes_over(tmp_path):
    # a valkey-server whose starter died without taking it along (as off Linux, where there is no parent-death
    # signal): it still holds its port and the data dir
    data_dir, valkey_port = tmp_path / "data", free_port()
    maker = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_MAKER, str(data_dir), str(valkey_port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert maker.stdout is not None
    orphan = int(maker.stdout.readline())
    proc, out = None, ""
    try:
        redis.Redis(port=valkey_port).set("probe", "kept")
        maker.kill()
        maker.wait(timeout=30)
        assert process_info(orphan) is not None and process_info(orphan)[0] != maker.pid

        port = free_port()
        proc = _start(data_dir, port)
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        assert _gone_within(orphan, 1), "serve did not stop the orphan before starting its own"
        assert _valkey_pid(data_dir) != orphan
        taken_over = redis.Redis.from_url((data_dir / "redis.url").read_text().strip())
        assert taken_over.get("probe") == b"kept"
    finally:
        _kill(orphan)
        if proc is not None:
            out = _stop(proc)
    assert "left running on" in out  # the takeover is logged


def test_a_second_serve_on_a_live_serves_data_dir_is_refused_in_one_line(tmp_path):
    data_dir, port = tmp_path / "data", free_port()
    proc = _start(data_dir, port)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        valkey = _valkey_pid(data_dir)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFOLD_")}
        second = subprocess.run(
            [sys.executable, "-m", "api.cli", "serve", "--data-dir", str(data_dir), "--port", str(free_port())],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode != 0
        assert "another streamfold serve" in second.stderr and "Traceback" not in second.stderr, second.stderr
        assert process_info(valkey) is not None  # the first serve's Valkey was left alone
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        _stop(proc)
