"""Exercises in the notebooks: check an answer, reveal the solutions, grade a student's copy.

A notebook exercise is two cells: an *answer cell* whose code is ``answer = None`` (the student replaces
``None``) and a *check cell* that calls :func:`check` with the value rf_widgets computes. The notebooks
ship with every answer blank, so a student sees no solution and the notebook still runs top to bottom:
:func:`check` prints "not answered yet" for ``None``, "right" for a correct answer, and for a wrong one a
hint, then raises :class:`WrongAnswer`.

The solutions live in ``notebooks/solutions.json``, keyed by notebook file name, one entry per exercise:
the id of its answer cell, the answer, and a typical wrong answer (the tests check that the right one is
accepted and the wrong one refused with a hint)::

    python -m rf_widgets.exercises reveal notebooks/01_receptive_fields_from_scratch.ipynb -o solved.ipynb
    python -m rf_widgets.exercises grade submissions/*.ipynb

``grade`` reads each answer cell without running it (a literal, or arithmetic on literals such as
``1 + 5 * 2``) and compares it with the solution.
"""

from __future__ import annotations

import argparse
import ast
import json
import numbers
import operator
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Grade", "WrongAnswer", "check", "grade", "load_solutions", "main", "reveal"]

SOLUTIONS_FILE = "solutions.json"
BLANK = "answer = None"
NOT_ANSWERED = "not answered yet: replace None in the answer cell above, then run both cells again"


class WrongAnswer(AssertionError):
    """Raised by :func:`check` when an answer is given and wrong (stops a Run All at the exercise)."""


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "True or False"
    if isinstance(value, numbers.Integral):
        return "a whole number"
    if isinstance(value, numbers.Real):
        return "a number"
    if isinstance(value, str):
        return "a string (a layer name in quotes, such as 'conv1')"
    return f"a {type(value).__name__}"


def check(answer: Any, expected: Any, hint: str) -> bool:
    """Compare a student's ``answer`` with the ``expected`` value and say so in one line.

    Returns True when right, False when not answered yet (``None``); raises :class:`WrongAnswer` after
    printing the hint when wrong.

    Examples
    --------
    >>> check(None, 11, "every 3x3 layer adds 2")
    not answered yet: replace None in the answer cell above, then run both cells again
    False
    >>> check(11, 11, "every 3x3 layer adds 2")
    right: 11 is what rf_widgets computes too
    True
    """
    if answer is None:
        print(NOT_ANSWERED)
        return False
    if (answer == expected and _kind(answer) == _kind(expected)) or _same_number(answer, expected):
        print(f"right: {answer!r} is what rf_widgets computes too")
        return True
    if _kind(answer) != _kind(expected) and not _both_numbers(answer, expected):
        advice = f"the answer is {_kind(expected)}, you gave {_kind(answer)}. Hint: {hint}"
    else:
        advice = f"Hint: {hint}"
    print(f"not yet: {answer!r} is not it. {advice}")
    raise WrongAnswer(f"{answer!r} is not the expected answer. {advice}")


def _both_numbers(a: Any, b: Any) -> bool:
    return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (a, b))


def _same_number(a: Any, b: Any) -> bool:
    return _both_numbers(a, b) and a == b


# -- solutions, reveal, grade ------------------------------------------------------------------------------


def load_solutions(notebook: str | Path, solutions: str | Path | None = None) -> list[dict[str, Any]]:
    """The exercises of ``notebook`` from the solutions file (default: ``solutions.json`` beside it)."""
    from rf_widgets.errors import RFError

    notebook = Path(notebook)
    path = Path(solutions) if solutions is not None else notebook.parent / SOLUTIONS_FILE
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RFError(f"cannot read the solutions file '{path}': {err}") from None
    if notebook.name not in table:
        raise RFError(f"the solutions file '{path}' has no exercises for '{notebook.name}'")
    return list(table[notebook.name])


def _read(notebook: str | Path) -> dict[str, Any]:
    from rf_widgets.errors import RFError

    try:
        return json.loads(Path(notebook).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RFError(f"cannot read the notebook '{notebook}': {err}") from None


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _answer_cells(document: dict[str, Any], exercises: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from rf_widgets.errors import RFError

    cells = {cell.get("id"): cell for cell in document.get("cells", [])}
    found = []
    for exercise in exercises:
        cell = cells.get(exercise["cell"])
        if cell is None:
            raise RFError(f"{exercise['name']}: the notebook has no answer cell with id '{exercise['cell']}'")
        found.append(cell)
    return found


def fill(document: dict[str, Any], exercises: list[dict[str, Any]], key: str = "answer") -> dict[str, Any]:
    """A copy of a notebook document with ``answer = None`` replaced by each exercise's ``key`` value."""
    from rf_widgets.errors import RFError

    filled = json.loads(json.dumps(document))
    for exercise, cell in zip(exercises, _answer_cells(filled, exercises), strict=True):
        source = _source(cell)
        if BLANK not in source:
            raise RFError(f"{exercise['name']}: the answer cell '{exercise['cell']}' has no '{BLANK}' line")
        cell["source"] = source.replace(BLANK, f"answer = {exercise[key]!r}", 1)
        cell["outputs"] = []
        cell["execution_count"] = None
    return filled


def reveal(
    notebook: str | Path, out: str | Path | None = None, *, solutions: str | Path | None = None
) -> Path:
    """Write a copy of ``notebook`` with every answer filled in (default: ``NAME_solved.ipynb`` beside it).

    The copy's outputs are those of the student copy until it is run again.
    """
    notebook = Path(notebook)
    exercises = load_solutions(notebook, solutions)
    target = Path(out) if out is not None else notebook.with_name(notebook.stem + "_solved.ipynb")
    target.write_text(json.dumps(fill(_read(notebook), exercises), indent=1) + "\n", encoding="utf-8")
    return target


@dataclass(frozen=True)
class Grade:
    """One exercise of one submission: ``status`` is "right", "wrong", "not answered" or "unreadable"."""

    exercise: str
    status: str
    given: str

    @property
    def right(self) -> bool:
        return self.status == "right"


_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _value(node: ast.AST) -> Any:
    """A literal, or arithmetic on literals; anything else raises ValueError (nothing is executed)."""
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_value(node.left), _value(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_value(node.operand))
    return ast.literal_eval(node)


def _given(source: str) -> tuple[str, Any]:
    """("value", v), ("none", None) or ("unreadable", text) for the last ``answer = ...`` of a cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return "unreadable", source.strip()
    found: ast.expr | None = None
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "answer" for t in statement.targets
        ):
            found = statement.value
    if found is None:
        return "unreadable", source.strip()
    try:
        value = _value(found)
    except (ValueError, TypeError, SyntaxError, ZeroDivisionError):
        return "unreadable", ast.unparse(found)
    return ("none", None) if value is None else ("value", value)


def grade(
    notebook: str | Path, *, solutions: str | Path | None = None, name: str | None = None
) -> list[Grade]:
    """Grade a student's copy of a notebook without running it: one :class:`Grade` per exercise.

    ``name`` is the notebook's file name in the solutions file when the submission was renamed.
    """
    notebook = Path(notebook)
    exercises = load_solutions(notebook.with_name(name) if name else notebook, solutions)
    grades = []
    for exercise, cell in zip(exercises, _answer_cells(_read(notebook), exercises), strict=True):
        kind, value = _given(_source(cell))
        if kind == "none":
            grades.append(Grade(exercise["name"], "not answered", "None"))
        elif kind == "unreadable":
            grades.append(Grade(exercise["name"], "unreadable", str(value)))
        else:
            expected = exercise["answer"]
            ok = (value == expected and _kind(value) == _kind(expected)) or _same_number(value, expected)
            grades.append(Grade(exercise["name"], "right" if ok else "wrong", repr(value)))
    return grades


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rf_widgets.exercises reveal NOTEBOOK [-o OUT]`` or ``grade NOTEBOOK ...``."""
    from rf_widgets.errors import RFError

    parser = argparse.ArgumentParser(
        prog="python -m rf_widgets.exercises", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("reveal", help="write a copy with the solutions filled in")
    show.add_argument("notebook")
    show.add_argument("-o", "--out", help="where to write it (default: NAME_solved.ipynb)")
    show.add_argument("--solutions", help="the solutions file (default: solutions.json beside the notebook)")
    marks = commands.add_parser("grade", help="grade students' copies without running them")
    marks.add_argument("notebooks", nargs="+")
    marks.add_argument(
        "--solutions", help="the solutions file (default: solutions.json beside each notebook)"
    )
    marks.add_argument("--as", dest="name", help="the notebook's original file name, for renamed submissions")
    args = parser.parse_args(argv)
    try:
        if args.command == "reveal":
            print(reveal(args.notebook, args.out, solutions=args.solutions))
            return 0
        for path in args.notebooks:
            grades = grade(path, solutions=args.solutions, name=args.name)
            score = sum(g.right for g in grades)
            print(f"{path}: {score}/{len(grades)}")
            for g in grades:
                print(f"  {g.exercise}: {g.status} ({g.given})")
    except RFError as err:
        print(f"rf_widgets: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
