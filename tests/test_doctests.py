"""Every example in a docstring of the package runs and prints what it shows.

One test per docstring that has examples to run (the module, class, function or method it documents):
a docstring without any, or with only ``# doctest: +SKIP`` ones, is not collected, and a test whose
examples did not all run fails.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import rf_widgets

MODULES = ["rf_widgets", *sorted(m.name for m in pkgutil.walk_packages(rf_widgets.__path__, "rf_widgets."))]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _runnable(test: doctest.DocTest) -> list[doctest.Example]:
    return [example for example in test.examples if not example.options.get(doctest.SKIP)]


def _docstrings_with_examples() -> dict[str, doctest.DocTest]:
    """Every docstring with examples to run, by qualified name (as ``doctest.testmod`` finds them)."""
    finder = doctest.DocTestFinder()
    found: dict[str, doctest.DocTest] = {}
    for name in MODULES:
        for test in finder.find(importlib.import_module(name)):
            if _runnable(test):
                found.setdefault(test.name, test)
    return found


DOCSTRINGS = _docstrings_with_examples()


def test_the_package_has_docstring_examples():
    assert len(DOCSTRINGS) >= 30
    assert "rf_widgets._api.analyze" in DOCSTRINGS
    assert "rf_widgets.core.graph.Stack" in DOCSTRINGS


@pytest.mark.parametrize("name", sorted(DOCSTRINGS))
def test_docstring_examples(name):
    test = DOCSTRINGS[name]
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test, clear_globs=False)
    assert result.attempted == len(_runnable(test)) > 0, f"{name}: {result.attempted} examples ran"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
