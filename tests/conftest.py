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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Real-browser tests take 10 s and more each (a Jupyter server, Chromium): they count as slow too.

    So ``tasks.py test --quick`` (``-m "not slow"``) leaves them out; the whole suite runs them.
    """
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.slow)
