"""Messages of the dispatcher's integration tests, built from the real bundles' examples."""

from __future__ import annotations

from datetime import datetime, timedelta, UTC
from functools import cache
from pathlib import Path
from typing import Any

from hub_dispatcher.edxl import edxl_datetime, find_example
from hub_dispatcher.usecases import BY_KEY
from tests.helpers.hubsante_models import envelope, message_of
from tests.integration.dispatcher.conftest import JSON_RECIPIENT, SENDER


@cache
def _use_case(bundle_dir: Path, name: str) -> dict[str, Any]:
    return find_example(bundle_dir, name).use_case()


def case_message(bundle_dir: Path, *, use_case: str = "RS-EDA", sender: str = SENDER,
                 recipient: str = JSON_RECIPIENT, **overrides: Any) -> dict[str, Any]:
    """A valid message of ``use_case`` (model name or key) from ``sender`` to ``recipient``."""
    bare = _use_case(bundle_dir, use_case)
    key = next(iter(bare))
    return envelope(bare, sender=sender, recipient=recipient, with_header=BY_KEY[key].has_header, **overrides)


def expiring_in(seconds: float) -> str:
    """A ``dateTimeExpires`` value ``seconds`` from now (EDXL has whole seconds)."""
    return edxl_datetime(datetime.now(UTC) + timedelta(seconds=seconds))


def use_case_body(document: dict[str, Any]) -> dict[str, Any]:
    """The use-case object inside a JSON message (to break it on purpose)."""
    message = message_of(document)
    key = next(key for key in message if key in BY_KEY)  # the header's keys are no use-case keys
    return message[key]
