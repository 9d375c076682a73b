"""The wheel is what users install: it holds every package, the static files and the Lua scripts, and the
`streamfold` it installs into a fresh environment serves. Dependencies come from the test environment (no
download): its site-packages is appended to the fresh one's path, after the wheel's own files."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from api.embedded import free_port

from .cli_helpers import clean_env, common_flags

ROOT = Path(__file__).resolve().parent.parent


def _project_files() -> list[str]:
    """The files of the work tree that git would commit (tracked or new, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [f for f in listed.stdout.splitlines() if (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the project's files: an egg-info or build/ left in the work tree by an editable
    install would otherwise fill in what the packaging configuration forgot."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for f in _project_files():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (built,) = out.glob("streamfold-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; returns its bin directory."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-deps",
         str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return venv / "bin"


def test_the_wheel_holds_every_module_static_file_and_script(wheel):
    tracked = subprocess.run(
        ["git", "ls-files", "ingest", "projections", "api"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = [f for f in tracked if f.endswith((".py", ".lua")) or f.startswith("api/static/")]
    assert [f for f in wanted if f not in shipped] == []


def test_the_installed_streamfold_imports_from_the_wheel(installed, tmp_path):
    probe = "import api, ingest.sources, projections; print(api.__file__)"
    where = subprocess.run(
        [str(installed / "python"), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert where.startswith(str(installed.parent))
    version = subprocess.run([str(installed / "streamfold"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("streamfold ")


def test_the_installed_streamfold_serves(installed, tmp_path, settings, redis):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(installed / "streamfold"), "serve", *common_flags(settings), "--port", str(port), "--no-fold"],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                r = httpx.get(f"{url}/v1/events", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the installed streamfold did not start"
                time.sleep(0.05)  # sleep-ok: polling until the server answers
        assert r.status_code == 401 and r.json()["status"] == "error"
        assert httpx.get(f"{url}/tracker.js").status_code == 200  # static files came with the wheel
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
