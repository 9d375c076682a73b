"""Logs: `json` is one object per line for our loggers, uvicorn's and FastStream's; an expected failure is one
line without its traceback (shown at level debug); an unexpected one keeps it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from api.logs import JsonFormatter, TextFormatter
from ingest.errors import Unavailable

EMIT = """
import logging
from api.logs import configure_logging
from ingest.settings import Settings
configure_logging(Settings(log_format="json"))
from projections.fold.applier import Applier  # FastStream imported after the set-up: its handler is still ours
logging.getLogger("streamfold.test").info("ours %s", 1)
logging.getLogger("faststream").warning("theirs")
logging.getLogger("uvicorn.error").info("uvicorn")
logging.getLogger("uvicorn.access").info("hidden: the access log is off")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("streamfold.test").exception("unexpected")
"""


def _record(exc: BaseException | None = None, name: str = "streamfold.test") -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, "it failed: %s", ("x",), info)


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_json_lines_from_every_logger_of_a_process():
    out = subprocess.run([sys.executable, "-c", EMIT], capture_output=True, text=True, check=True)
    records = [json.loads(line) for line in out.stderr.splitlines()]
    assert [(r["logger"], r["level"], r["message"]) for r in records] == [
        ("streamfold.test", "info", "ours 1"),
        ("faststream", "warning", "theirs"),
        ("uvicorn.error", "info", "uvicorn"),
        ("streamfold.test", "error", "unexpected"),
    ]
    assert records[0]["time"].endswith("Z")
    assert (
        records[-1]["exception"].startswith("Traceback") and "ZeroDivisionError" in records[-1]["exception"]
    )
    assert out.stdout == ""


def test_an_expected_failure_is_one_line():
    exc = _raised(Unavailable("the event log is unavailable"))
    text = TextFormatter().format(_record(exc))
    assert text.endswith("it failed: x: Unavailable: the event log is unavailable")
    assert "\n" not in text
    doc = json.loads(JsonFormatter().format(_record(exc)))
    assert doc["exception"] == "Unavailable: the event log is unavailable"


def test_an_unexpected_failure_keeps_its_traceback():
    text = TextFormatter().format(_record(_raised(KeyError("k"))))
    assert "Traceback" in text and text.splitlines()[-1] == "KeyError: 'k'"
