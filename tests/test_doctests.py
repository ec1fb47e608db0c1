"""Every example in a docstring of the package runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import rf_widgets

MODULES = sorted(m.name for m in pkgutil.walk_packages(rf_widgets.__path__, "rf_widgets."))


def test_the_package_has_docstring_examples():
    finder = doctest.DocTestFinder()
    examples = sum(len(t.examples) for t in finder.find(rf_widgets))
    assert examples >= 1


@pytest.mark.parametrize("name", ["rf_widgets", *MODULES])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
