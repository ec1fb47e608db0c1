"""The public API, pinned: a name added or removed here is a decision, not an accident (issue 21).

``rf_widgets`` and its public subpackages list what users may import in ``__all__``; every listed name
exists; private helpers (leading underscore) are not listed; the package ships ``py.typed`` so type
checkers read its annotations.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import rf_widgets

PUBLIC = {
    "rf_widgets": [
        "Analysis",
        "Box",
        "Diagnostic",
        "GraphError",
        "INPUT",
        "Layer",
        "LayerResult",
        "LayerSpecError",
        "ModelImportError",
        "RFError",
        "ResolutionError",
        "RuleTable",
        "Stack",
        "StackFileError",
        "Suggestion",
        "Suggestions",
        "adaptive_pool",
        "add",
        "analyze",
        "concat",
        "conv",
        "conv_transpose",
        "elementwise",
        "flatten",
        "global_pool",
        "load_stack",
        "mul",
        "pool",
        "suggest",
        "unknown",
        "upsample",
    ],
    "rf_widgets.errors": [
        "DataError",
        "GraphError",
        "LayerSpecError",
        "ModelImportError",
        "RFError",
        "ResolutionError",
        "RuleFailureWarning",
        "StackFileError",
        "UnknownOperationWarning",
    ],
    "rf_widgets.strategies": [
        "EDIT_KINDS",
        "KINDS",
        "PICKS",
        "PICK_KINDS",
        "Candidate",
        "Edit",
        "Front",
        "Suggestion",
        "Suggestions",
        "search",
        "suggest",
    ],
    "rf_widgets.frontends": [
        "CONST",
        "Act",
        "Frontend",
        "Resolved",
        "ShapeOf",
        "frontend",
        "frontends",
        "register",
        "resolve",
    ],
    "rf_widgets.core.analysis": [
        "Engine",
        "Evaluation",
        "Judgement",
        "MapRequirement",
        "engine",
        "evaluate",
        "normalize_resolution",
    ],
    "rf_widgets.core.results": [
        "SCHEMA_VERSION",
        "STATUS_COLOURS",
        "Analysis",
        "Box",
        "LayerResult",
        "analyze_stack",
        "spatial_line",
        "summary_lines",
        "summary_rows",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_the_public_names_are_pinned(module):
    found = importlib.import_module(module)
    assert sorted(found.__all__) == sorted(PUBLIC[module])
    for name in found.__all__:
        assert hasattr(found, name), f"{module}.{name} is listed but missing"
        assert not name.startswith("_")


def test_the_package_ships_py_typed():
    package = Path(rf_widgets.__file__).parent
    assert (package / "py.typed").is_file()
    config = (package.parent / "pyproject.toml").read_text()
    assert '[tool.setuptools.package-data]\nrf_widgets = ["py.typed"]' in config
