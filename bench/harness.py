"""Shared benchmark plumbing: start `streamfold` processes and wait for them to listen (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import subprocess
import sys


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`streamfold <args>` as a child process with its output discarded."""
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_http(port: int, timeout: float = 30.0) -> None:
    """Return once something listens on 127.0.0.1:`port`."""
    for _ in range(int(timeout / 0.05)):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)  # sleep-ok: polling for the server to listen
    raise TimeoutError("server did not start")


def server_env(redis_url: str, port: int) -> dict[str, str]:
    """The environment a benchmarked `streamfold` process runs with."""
    return {
        **os.environ,
        "STREAMFOLD_REDIS_URL": redis_url,
        "STREAMFOLD_PORT": str(port),
        "STREAMFOLD_LOG_LEVEL": "warning",
    }


def stop_all(procs: list[subprocess.Popen[bytes]], server: object, data_dir: str) -> None:
    """Terminate the `streamfold` children, then the private valkey-server, then remove its data dir."""
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)
    server.stop()  # type: ignore[attr-defined]
    shutil.rmtree(data_dir, ignore_errors=True)


def machine() -> str:
    """This machine, as every result names it: host, cores, processor, Python."""
    cpu = platform.processor() or platform.machine()
    return f"{platform.node()} · {os.cpu_count()} vCPU · {cpu} · Python {platform.python_version()}"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, recorded with every result (benchmarks want a quiet machine)."""
    return [round(x, 2) for x in os.getloadavg()]
