"""Logging for every Streamfold process: our loggers, uvicorn's and FastStream's, in one format on stderr.

`text` is one human-readable line per record; `json` is one JSON object per line (time, level, logger, message,
and `exception` when there is one). An expected failure (a `StreamfoldError`, Redis unreachable) is logged as one
line `Type: message`; its traceback is shown only at level `debug`.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

from ingest.errors import StreamfoldError
from ingest.redis_client import STORE_UNAVAILABLE
from ingest.settings import Settings

EXPECTED = (StreamfoldError, *STORE_UNAVAILABLE, ConnectionError, TimeoutError)
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if not record.exc_info or record.exc_info[1] is None:
        return record.exc_text or None
    exc = record.exc_info[1]
    if isinstance(exc, EXPECTED) and logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        return f"{type(exc).__name__}: {exc}"
    return formatter.formatException(record.exc_info)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(self._prepared(record))
        exc = _exception_text(self, record)
        return f"{line}\n{exc}" if exc and "\n" in exc else f"{line}: {exc}" if exc else line

    def _prepared(self, record: logging.LogRecord) -> logging.LogRecord:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        return record


class JsonFormatter(logging.Formatter):
    """One JSON object per line. uvicorn's access records also carry client, method, path and status."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            doc.update(zip(_ACCESS_FIELDS, record.args, strict=True))
        exc = _exception_text(self, record)
        if exc:
            doc["exception"] = exc
        return json.dumps(doc, default=str, ensure_ascii=False)


def logging_config(level: str = "info", fmt: str = "text", access_log: bool = False) -> dict[str, Any]:
    """A `logging.config.dictConfig` document; also handed to uvicorn (`log_config`), which applies it in every
    worker process it starts."""
    formatter = {"()": f"{__name__}.{'JsonFormatter' if fmt == 'json' else 'TextFormatter'}"}
    handler = {"class": "logging.StreamHandler", "formatter": "streamfold", "stream": "ext://sys.stderr"}
    own = {"handlers": ["stderr"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"streamfold": formatter},
        "handlers": {"stderr": handler},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            # uvicorn and FastStream bring their own handlers and formats; ours replace them
            "uvicorn": {**own, "level": level.upper()},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {**own, "level": "INFO" if access_log else "WARNING"},
            "faststream": {**own, "level": level.upper()},
        },
    }


def configure_logging(settings: Settings) -> dict[str, Any]:
    """Apply the settings' logging to this process; returns the config for uvicorn to apply in its workers."""
    import faststream  # noqa: F401  (it installs its own handler when first imported: import it before ours)

    config = logging_config(settings.log_level, settings.log_format, settings.access_log)
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    return config
