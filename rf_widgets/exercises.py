"""Exercises in the notebooks: check an answer, reveal the solutions, grade a student's copy.

A notebook exercise is two cells: an *answer cell* whose code is ``answer = None`` (the student replaces
``None``) and a *check cell* that calls :func:`check` with a *token* of the expected answer: its kind and a
hash of it (:func:`answer_token`), so the student's copy neither shows the answer nor computes it. The
notebooks ship with every answer blank, so the notebook still runs top to bottom: :func:`check` prints one
line, "not answered yet" for ``None``, "right" for a correct answer, and for a wrong one a hint, then
raises :class:`WrongAnswer`.

The solutions live in ``notebooks/solutions.json`` (the instructor's file), keyed by notebook file name,
one entry per exercise: the id of its answer cell, the answer, and a typical wrong answer (the tests check
that each check cell's token is the answer's, that the answer is what rf_widgets computes, and that the
wrong one is refused with a hint)::

    python -m rf_widgets.exercises reveal notebooks/01_receptive_fields_from_scratch.ipynb -o solved.ipynb
    python -m rf_widgets.exercises grade submissions/*.ipynb

``grade`` reads each answer cell without running it (a literal, or arithmetic on literals such as
``1 + 5 * 2``, bounded in size before anything is computed) and compares it with the solution; an answer
it cannot read is graded "unreadable", a file that is not a notebook is reported in one line, and the
rest is graded.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import numbers
import operator
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Grade", "WrongAnswer", "answer_token", "check", "grade", "load_solutions", "main", "reveal"]

SOLUTIONS_FILE = "solutions.json"
BLANK = "answer = None"
NOT_ANSWERED = "not answered yet: replace None in the answer cell above, then run both cells again"

# Limits on what the grader reads and computes: checked before anything is allocated.
MAX_FILE_BYTES = 64 * 1024 * 1024  # a notebook or solutions file
MAX_ANSWER_LENGTH = 10_000  # characters of a string, items of a list or tuple
MAX_ANSWER_DIGITS = 30  # decimal digits of a whole number
_MAX_INT = 10**MAX_ANSWER_DIGITS

# The kind of an answer as a token names it, and how a hint says it.
_KINDS = {
    "number": "a number",
    "string": "a string (a layer name in quotes, such as 'conv1')",
    "bool": "True or False",
}


class WrongAnswer(AssertionError):
    """Raised by :func:`check` when an answer is given and wrong (stops a Run All at the exercise)."""


def _canonical(value: Any) -> tuple[str, str]:
    """(kind, text) of an answer: equal numbers have the same text whatever their type (11 and 11.0)."""
    if isinstance(value, bool):
        return "bool", str(value)
    if isinstance(value, numbers.Real):
        number = float(value) if not isinstance(value, numbers.Integral) else int(value)
        if isinstance(number, float) and math.isfinite(number) and number.is_integer():
            number = int(number)
        if isinstance(number, int):
            return "number", str(number) if abs(number) < _MAX_INT else "huge"
        return "number", repr(number)
    if isinstance(value, str):
        return "string", value
    return type(value).__name__, _short(value)


def answer_token(value: Any) -> str:
    """The token a check cell holds instead of its answer: the answer's kind and a hash of the answer.

    Examples
    --------
    >>> answer_token(11) == answer_token(11.0) != answer_token("11")
    True
    >>> answer_token("conv4").split(":")[0]
    'string'
    """
    kind, text = _canonical(value)
    digest = hashlib.sha256(f"rf_widgets exercise|{kind}|{text}".encode("utf-8", "surrogatepass"))
    return f"{kind}:{digest.hexdigest()[:16]}"


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (an answer may be huge)."""
    if isinstance(value, str | list | tuple | dict | set) and len(value) > limit:
        value = value[:limit] if isinstance(value, str | list | tuple) else type(value)()
        return repr(value)[:limit] + "..."
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _MAX_INT:
        return f"a whole number of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _cut(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[:limit] + "..."


def check(answer: Any, token: str, hint: str) -> None:
    """Compare a student's ``answer`` with the expected answer's ``token`` and say so in one line.

    ``token`` comes from :func:`answer_token` (the check cell holds it, not the answer). Prints "not
    answered yet" for ``None`` and "right" for a correct answer; prints the hint and raises
    :class:`WrongAnswer` when wrong. Returns nothing, so a check cell shows only its line.

    Examples
    --------
    >>> token = answer_token(11)
    >>> check(None, token, "every 3x3 layer adds 2")
    not answered yet: replace None in the answer cell above, then run both cells again
    >>> check(11, token, "every 3x3 layer adds 2")
    right: 11 is what rf_widgets computes too
    """
    if answer is None:
        print(NOT_ANSWERED)
        return
    if answer_token(answer) == token:
        print(f"right: {_short(answer)} is what rf_widgets computes too")
        return
    expected, given = token.split(":", 1)[0], _canonical(answer)[0]
    if expected != given and expected in _KINDS:
        advice = f"the answer is {_KINDS[expected]}, you gave {_KINDS.get(given, f'a {given}')}. Hint: {hint}"
    else:
        advice = f"Hint: {hint}"
    print(f"not yet: {_short(answer)} is not it. {advice}")
    raise WrongAnswer(f"{_short(answer)} is not the expected answer. {advice}")


# -- solutions, reveal, grade ------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> Any:
    """The JSON document in ``path``: only a regular file (a FIFO would block), at most MAX_FILE_BYTES."""
    from rf_widgets.errors import RFError

    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise RFError(f"cannot read the {what} '{path}': not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            size = f"{info.st_size:,} bytes, over the limit of {MAX_FILE_BYTES:,}"
            raise RFError(f"cannot read the {what} '{path}': {size}")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        if isinstance(err, RFError):
            raise
        raise RFError(f"cannot read the {what} '{path}': {_one_line(err)}") from None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]


def load_solutions(notebook: str | Path, solutions: str | Path | None = None) -> list[dict[str, Any]]:
    """The exercises of ``notebook`` from the solutions file (default: ``solutions.json`` beside it)."""
    from rf_widgets.errors import RFError

    notebook = Path(notebook)
    path = Path(solutions) if solutions is not None else notebook.parent / SOLUTIONS_FILE
    table = _read_json(path, "solutions file")
    if not isinstance(table, dict):
        raise RFError(f"the solutions file '{path}' is not a JSON object keyed by notebook file name")
    if notebook.name not in table:
        raise RFError(f"the solutions file '{path}' has no exercises for '{notebook.name}'")
    exercises = table[notebook.name]
    keys = {"name", "cell", "answer"}
    if not isinstance(exercises, list) or not all(isinstance(e, dict) and keys <= set(e) for e in exercises):
        raise RFError(
            f"the solutions file '{path}': the entry for '{notebook.name}' must be a list of objects "
            "with 'name', 'cell' and 'answer'"
        )
    return list(exercises)


def _read(notebook: str | Path) -> dict[str, Any]:
    """A notebook document: a JSON object whose 'cells' is a list of objects."""
    from rf_widgets.errors import RFError

    document = _read_json(Path(notebook), "notebook")
    if not isinstance(document, dict):
        kind = "null" if document is None else f"a JSON {type(document).__name__}"
        raise RFError(f"'{notebook}' is not a notebook: it holds {kind}, not an object with 'cells'")
    cells = document.get("cells")
    if not isinstance(cells, list) or not all(isinstance(cell, dict) for cell in cells):
        raise RFError(f"'{notebook}' is not a notebook: its 'cells' is not a list of cells")
    return document


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        return "".join(line for line in source if isinstance(line, str))
    return source if isinstance(source, str) else ""


def _answer_cells(document: dict[str, Any], exercises: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from rf_widgets.errors import RFError

    cells = {cell.get("id"): cell for cell in document["cells"] if isinstance(cell.get("id"), str)}
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


class _Unreadable(ValueError):
    """An answer the grader will not compute (too large, or not a literal); the message says why."""


_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _bounded(value: Any) -> Any:
    """``value`` if it is within the answer limits, else :class:`_Unreadable` naming the limit."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _MAX_INT:
        raise _Unreadable(f"a whole number of more than {MAX_ANSWER_DIGITS} digits (the limit)")
    if isinstance(value, str | bytes | list | tuple | set | dict) and len(value) > MAX_ANSWER_LENGTH:
        raise _Unreadable(f"{len(value):,} characters or items, over the limit of {MAX_ANSWER_LENGTH:,}")
    return value


def _predict(op: type, left: Any, right: Any) -> None:
    """Refuse a repetition (``'a' * n``) whose result would exceed the limit, before computing it.

    Every operand is already bounded, so the other operations are cheap and checked on their result.
    """
    if op is not ast.Mult:
        return
    for seq, count in ((left, right), (right, left)):
        sized = isinstance(seq, str | bytes | list | tuple) and isinstance(count, int)
        if sized and len(seq) * max(count, 0) > MAX_ANSWER_LENGTH:
            raise _Unreadable(
                f"{len(seq):,} x {count:,} characters or items, over the limit of {MAX_ANSWER_LENGTH:,}"
            )


def _value(node: ast.AST) -> Any:
    """A literal, or arithmetic on literals; anything else raises ValueError (nothing is executed).

    Every intermediate value is bounded (:data:`MAX_ANSWER_LENGTH`, :data:`MAX_ANSWER_DIGITS`), and an
    operation is refused before it is computed when its result would not be.
    """
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _value(node.left), _value(node.right)
        _predict(type(node.op), left, right)
        return _bounded(_OPERATORS[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _bounded(_OPERATORS[type(node.op)](_value(node.operand)))
    return _bounded(ast.literal_eval(node))


def _given(source: str) -> tuple[str, Any]:
    """("value", v), ("none", None) or ("unreadable", text) for the last ``answer = ...`` of a cell."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "unreadable", _cut(source.strip())
    found: ast.expr | None = None
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "answer" for t in statement.targets
        ):
            found = statement.value
    if found is None:
        return "unreadable", _cut(source.strip())
    text = _cut(ast.get_source_segment(source, found) or source.strip())  # the student's text, unparsed
    try:
        value = _value(found)
    except _Unreadable as err:
        return "unreadable", f"{text}: {err}"
    except (ValueError, TypeError, SyntaxError, ZeroDivisionError, OverflowError, RecursionError):
        return "unreadable", text
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
            ok = answer_token(value) == answer_token(exercise["answer"])
            grades.append(Grade(exercise["name"], "right" if ok else "wrong", _short(value)))
    return grades


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rf_widgets.exercises reveal NOTEBOOK [-o OUT]`` or ``grade NOTEBOOK ...``.

    ``grade`` goes on after a notebook it cannot read (one line on stderr) and then exits with 2.
    """
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
    if args.command == "reveal":
        try:
            print(reveal(args.notebook, args.out, solutions=args.solutions))
        except RFError as err:
            print(f"rf_widgets: error: {err}", file=sys.stderr)
            return 2
        return 0
    failed = False
    for path in args.notebooks:
        try:
            grades = grade(path, solutions=args.solutions, name=args.name)
        except RFError as err:
            print(f"rf_widgets: error: {err}", file=sys.stderr)
            failed = True
            continue
        score = sum(g.right for g in grades)
        print(f"{path}: {score}/{len(grades)}")
        for g in grades:
            print(f"  {g.exercise}: {g.status} ({g.given})")
    return 2 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
