"""Log lines: every line has a UTC timestamp and a level; the access log is JSON, one line a request.

``configure`` sets up Python logging (standard error) for the CLI and each server worker;
``granian_config`` gives granian's own loggers the same format. The access log does not go
through :mod:`logging` (it would cost several microseconds per request): see
:class:`csscert.api.observe.AccessLog`, which writes the same kind of lines to the same stream.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["DATE_FORMAT", "LINE_FORMAT", "configure", "granian_config"]

LINE_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


class _UTCFormatter(logging.Formatter):
    converter = time.gmtime  # type: ignore[assignment]


def configure(level: str) -> None:
    """Python logging for this process: standard error, UTC timestamps, the level of the settings."""
    handler = logging.StreamHandler()
    handler.setFormatter(_UTCFormatter(LINE_FORMAT, DATE_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def granian_config(level: str) -> dict[str, Any]:
    """granian's ``log_dictconfig``: its lines in our format, on standard error (not standard
    output, which belongs to the CLI's own output)."""
    formatter = {"()": f"{__name__}._UTCFormatter", "fmt": LINE_FORMAT, "datefmt": DATE_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"generic": formatter, "access": formatter},
        "handlers": {
            "console": {
                "formatter": "generic",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "_granian": {"handlers": ["console"], "level": level.upper(), "propagate": False},
            "granian.access": {"handlers": ["access"], "level": level.upper(), "propagate": False},
        },
    }
