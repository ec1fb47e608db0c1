"""docs/frontends.md's fourth frontend runs as written (its block asserts what it shows)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rf_widgets import rules
from rf_widgets.frontends import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "frontends.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_fourth_frontend_of_the_docs_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTERED", list(registry._REGISTERED))  # the doc registers one
    monkeypatch.setattr(rules, "_BUILTIN", dict(rules._BUILTIN))
    monkeypatch.setattr(rules, "_FILLERS", dict(rules._FILLERS))
    assert len(BLOCKS) == 1
    namespace: dict[str, object] = {"__name__": "frontends_doc"}
    exec(compile(BLOCKS[0], str(DOC), "exec", dont_inherit=True), namespace)
    assert namespace["result"].stack.names == ("c1", "p1", "c2", "b")  # type: ignore[attr-defined]
    assert registry.frontends()[0].name == "chain"
