"""Notebook 03, the Explorer tour: it names every control, and a live Explorer it shows is not changed by a
later cell (as a Voila app every cell runs before the page shows, so a widget shows the last state)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

TOUR = Path(__file__).resolve().parents[1] / "notebooks" / "03_explorer_tour.ipynb"


def _cells():
    return json.loads(TOUR.read_text(encoding="utf-8"))["cells"]


def _source(cell) -> str:
    return "".join(cell["source"])


def _named_in_the_prose() -> set[str]:
    return {
        name
        for cell in _cells()
        if cell["cell_type"] == "markdown"
        for name in re.findall(r"`([a-z_0-9]+)`", _source(cell))
    }


def test_the_tour_names_every_control_of_a_stack_explorer():
    import rf_widgets as rfw
    from rf_widgets.data import example_stacks

    explorer = rfw.explore(example_stacks()["vgg-like"], image="checkerboard", input_size=64)
    assert sorted(set(explorer.controls) - _named_in_the_prose()) == []


def test_the_tour_names_every_control_of_a_torch_explorer():
    torch = pytest.importorskip("torch")
    import rf_widgets as rfw

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, stride=2))
    explorer = rfw.explore(model, input_size=16)
    assert sorted(set(explorer.controls) - _named_in_the_prose()) == []


def _shown(source: str) -> set[str]:
    """Names a cell shows as widgets: display(NAME) calls and a bare NAME on the last line."""
    tree = ast.parse(source)
    shown = {
        node.args[0].id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "display"
        and node.args
        and isinstance(node.args[0], ast.Name)
    }
    if tree.body and isinstance(tree.body[-1], ast.Expr) and isinstance(tree.body[-1].value, ast.Name):
        shown.add(tree.body[-1].value.id)
    return shown


def test_no_cell_changes_an_explorer_after_showing_it_live():
    """Only a cell that puts the Explorer back as it was (it says so) may touch it afterwards."""
    code = [_source(c) for c in _cells() if c["cell_type"] == "code"]
    changed_after = []
    shown_explorers = set()
    for i, source in enumerate(code):
        for name in _shown(source) & {"first", "explorer", "mine"}:
            shown_explorers.add(name)
            for later in code[i + 1 :]:
                touches = re.search(
                    rf"\b{name}\.controls\[[^\]]+\]\.(value\s*=[^=]|click\(|set_state\()", later
                )
                if touches and "back to the Explorer as opened" not in later:
                    changed_after.append((name, later.splitlines()[0]))
    assert shown_explorers == {"first", "explorer", "mine"}
    assert changed_after == []
