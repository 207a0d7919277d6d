"""Logging: readable text for people, or one JSON object per line for log pipelines (``--log-format json``).

kopf's per-object loggers add the object they are about (``k8s_ref``); the operator's own records add
``object``, ``kind`` and ``reason``.  Both end up as fields of the JSON line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

from hub_operator.settings import LogFormat

#: Attributes every LogRecord has; anything else was passed as ``extra`` and becomes a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if key == "k8s_ref" and isinstance(value, dict):
                entry["object"] = f"{value.get('namespace', '')}/{value.get('name', '')}".lstrip("/")
                entry["kind"] = value.get("kind")
                continue
            entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        reference = getattr(record, "k8s_ref", None)
        text = super().format(record)
        if isinstance(reference, dict) and reference.get("name"):
            where = f"[{reference.get('namespace', '')}/{reference['name']}]".replace("[/", "[")
            text = text.replace(": ", f": {where} ", 1)
        return text


def configure(log_format: LogFormat, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format is LogFormat.JSON else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter below warnings is noise in an operator's log.
    for noisy in ("httpx", "httpcore", "urllib3", "kubernetes", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # kopf logs every handler and timer run at INFO ("Timer ... succeeded" every drift interval per vhost): the
    # operator logs what changed itself, so kopf's per-object chatter is kept for DEBUG.
    if logging.getLevelName(level) > logging.DEBUG:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
