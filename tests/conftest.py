"""Shared fixtures: no widget callback may fail unnoticed."""

from __future__ import annotations

import logging

import pytest


class _CallbackErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "Exception in callback" in record.getMessage():
            self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_swallowed_callback_errors():
    """ipywidgets logs (and swallows) exceptions raised in click handlers: turn them into failures."""
    handler = _CallbackErrors()
    logger = logging.getLogger("traitlets")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    if handler.records:
        pytest.fail("a widget callback raised: " + "; ".join(r.getMessage() for r in handler.records))
