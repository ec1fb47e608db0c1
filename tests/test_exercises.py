"""Notebook exercises: blank as shipped, no answer in the student's copy, every solution accepted, typical
mistakes refused with a hint, and a grader that reads hostile submissions without running or choking.

Notebook 01 is executed once (:func:`executed`), here rather than by nbval (``notebooks/conftest.py``
leaves it out): the checked outputs are compared with the stored ones as nbval would, and the solutions and
typical mistakes are tried in the same kernel, after the notebook, by cells appended to it.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rf_widgets import exercises
from rf_widgets.errors import RFError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = json.loads((NOTEBOOKS / exercises.SOLUTIONS_FILE).read_text())
WITH_EXERCISES = sorted(SOLUTIONS)
NB01 = "01_receptive_fields_from_scratch.ipynb"
CHECKED = "# NBVAL_CHECK_OUTPUT"


def _cells(document):
    return {cell["id"]: cell for cell in document["cells"]}


def _text(cell):
    return exercises._source(cell)


def _stream(cell):
    texts = [o.get("text", "") for o in cell.get("outputs", []) if o["output_type"] == "stream"]
    return "".join("".join(t) if isinstance(t, list) else t for t in texts)


def _results(cell):
    """The text/plain of a cell's execute_result outputs (the value of its last line)."""
    return [
        "".join(o["data"].get("text/plain", ""))
        for o in cell.get("outputs", [])
        if o["output_type"] == "execute_result"
    ]


def _errors(cell):
    return [o["ename"] for o in cell.get("outputs", []) if o["output_type"] == "error"]


def _check_cell(document, answer_id):
    """The code cell right after an answer cell: the one that calls check()."""
    ids = [cell["id"] for cell in document["cells"]]
    following = document["cells"][ids.index(answer_id) + 1]
    assert "check(" in _text(following), f"the cell after '{answer_id}' does not call check()"
    return following


def _constants(source):
    return [node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant)]


# -- the shipped notebooks, read without running them -------------------------------------------------------


def test_every_notebook_with_a_check_call_has_solutions():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        calls = "check(answer" in path.read_text()
        assert calls == (path.name in SOLUTIONS), path.name


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_the_student_copy_is_blank_and_neither_shows_nor_computes_a_solution(name):
    document = json.loads((NOTEBOOKS / name).read_text())
    cells = _cells(document)
    answer_cells = {
        cell["id"] for cell in document["cells"] if cell["cell_type"] == "code" and "answer = " in _text(cell)
    }
    assert answer_cells == {e["cell"] for e in SOLUTIONS[name]}, "an answer cell without a solution entry"
    for exercise in SOLUTIONS[name]:
        cell = cells[exercise["cell"]]
        assert _text(cell).startswith(exercises.BLANK), _text(cell)
        check = _check_cell(document, exercise["cell"])
        source = _text(check)
        # the check cell holds the answer's token, and nothing else it could be read or computed from
        assert exercises.answer_token(exercise["answer"]) in source
        tree = ast.parse(source)
        assert [type(s).__name__ for s in tree.body] == ["Expr"], "the check cell only calls check()"
        call = tree.body[0].value
        assert isinstance(call, ast.Call)
        assert ast.unparse(call.func) == "check"
        assert ast.unparse(call.args[0]) == "answer"
        assert all(isinstance(arg, ast.Constant) for arg in call.args[1:]), "no computed argument"
        assert exercise["answer"] not in _constants(source)
        assert repr(exercise["answer"]) not in _stream(check)
        # one line, no stray value
        assert _stream(check) == exercises.NOT_ANSWERED + "\n"
        assert _results(check) == []
    # `answer` is read by the check cells only, so an answer cannot change anything else the notebook shows
    checks = {_check_cell(document, e["cell"])["id"] for e in SOLUTIONS[name]}
    for cell in document["cells"]:
        if cell["cell_type"] == "code" and cell["id"] not in answer_cells | checks:
            names = {n.id for n in ast.walk(ast.parse(_text(cell))) if isinstance(n, ast.Name)}
            assert "answer" not in names, cell["id"]
    errors = [c["id"] for c in document["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == []
    assert "solutions.json" not in (NOTEBOOKS / name).read_text()


def _by_hand(layers):
    """r of the last layer of a chain by the recipe of notebook 01: r += d (k - 1) J, J *= s."""
    r, jump = 1, 1
    for k, s, d in layers:
        r, jump = r + d * (k - 1) * jump, jump * s
    return r


def test_the_stored_answers_are_what_the_exercises_ask():
    """Exercises 1-3 by hand (the recipe), and all four by rf_widgets, as the old check cells computed."""
    import rf_widgets as rfw

    answers = {e["name"]: e["answer"] for e in SOLUTIONS[NB01]}
    assert answers["Exercise 1"] == _by_hand([(3, 1, 1)] * 5) == 11
    assert answers["Exercise 2"] == _by_hand([(3, 2, 1), (2, 2, 1), (3, 1, 1)]) == 13
    assert answers["Exercise 3"] == _by_hand([(3, 1, 1), (3, 1, 2), (3, 1, 4)]) == 15
    five = rfw.analyze([rfw.conv(f"conv{i}", 3, padding=1) for i in range(1, 6)], 32)
    assert five.layer("conv5").r_max[0] == answers["Exercise 1"]
    second = rfw.analyze([rfw.conv("a", 3, stride=2), rfw.pool("p", 2), rfw.conv("b", 3)], 32)
    assert second.layer("b").r_max[0] == answers["Exercise 2"]
    third = rfw.analyze([rfw.conv("a", 3), rfw.conv("b", 3, dilation=2), rfw.conv("c", 3, dilation=4)], 32)
    assert third.layer("c").r_max[0] == answers["Exercise 3"]
    tiny = [
        rfw.conv("conv1", 3, padding=1),
        rfw.conv("conv2", 3, padding=1),
        rfw.pool("pool1", 2),
        rfw.conv("conv3", 3, padding=1),
        rfw.conv("conv4", 3, padding=1),
        rfw.pool("pool2", 2),
        rfw.conv("conv5", 3, padding=1),
        rfw.global_pool("gap"),
    ]
    assert rfw.analyze(tiny, 12).border_layer == answers["Exercise 4"]
    for exercise in SOLUTIONS[NB01]:
        assert exercises.answer_token(exercise["wrong"]) != exercises.answer_token(exercise["answer"])


# -- notebook 01 executed once ------------------------------------------------------------------------------


def _execute(document):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.reads(json.dumps(document), as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    # the kernel must be this interpreter (what nbval's --nbval-current-env does)
    client.km = client.kernel_manager_class(kernel_name="python3")
    client.km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    client.execute()
    return json.loads(nbformat.writes(notebook))


def _tries(document, exercise, key):
    """Two cells to append: the answer cell with the exercise's ``key`` value, then its check cell."""
    filled = exercises.fill(document, [exercise], key)
    cells = []
    for cell in (_cells(filled)[exercise["cell"]], _check_cell(document, exercise["cell"])):
        cell = json.loads(json.dumps(cell))
        cell.update(id=f"{key}-{cell['id']}", outputs=[], execution_count=None)
        cells.append(cell)
    return cells


@pytest.fixture(scope="module")
def executed():
    """Notebook 01 as shipped, run once; then every solution and every typical mistake, in the same kernel."""
    shipped = json.loads((NOTEBOOKS / NB01).read_text())
    document = json.loads(json.dumps(shipped))
    for exercise in SOLUTIONS[NB01]:
        for key in ("answer", "wrong"):
            document["cells"] += _tries(shipped, exercise, key)
    return shipped, _execute(document)


@pytest.mark.slow
def test_notebook_01_runs_and_prints_its_stored_checked_outputs(executed):
    """What nbval --nbval-lax would check: no cell fails, every checked cell prints what is stored."""
    shipped, run = executed
    ran = _cells(run)
    assert [c["id"] for c in run["cells"] if _errors(c) and c["id"] in _cells(shipped)] == []
    checked = [c for c in shipped["cells"] if c["cell_type"] == "code" and _text(c).startswith(CHECKED)]
    assert len(checked) >= 10
    for cell in checked:
        assert _stream(ran[cell["id"]]) == _stream(cell), cell["id"]
        assert _results(ran[cell["id"]]) == _results(cell), cell["id"]


@pytest.mark.slow
def test_solutions_are_accepted_and_typical_mistakes_refused_with_a_hint(executed):
    shipped, run = executed
    ran = _cells(run)
    for exercise in SOLUTIONS[NB01]:
        check = ran[_check_cell(shipped, exercise["cell"])["id"]]
        assert _stream(check) == exercises.NOT_ANSWERED + "\n"
        assert _results(check) == []

        right = ran[f"answer-{_check_cell(shipped, exercise['cell'])['id']}"]
        assert _errors(right) == []
        assert _results(right) == []
        assert _stream(right) == f"right: {exercise['answer']!r} is what rf_widgets computes too\n"

        wrong = ran[f"wrong-{_check_cell(shipped, exercise['cell'])['id']}"]
        text = _stream(wrong)
        assert text.startswith(f"not yet: {exercise['wrong']!r} is not it."), text
        assert text.count("\n") == 1, text
        assert "Hint: " in text
        assert len(text.split("Hint: ", 1)[1].strip()) > 20, "the hint says something"
        assert _errors(wrong) == ["WrongAnswer"]


# -- check and grade, without a kernel ----------------------------------------------------------------------


def test_check_says_not_answered_right_or_wrong_with_a_hint(capsys):
    token = exercises.answer_token(11)
    assert exercises.check(None, token, "h") is None
    assert capsys.readouterr().out == exercises.NOT_ANSWERED + "\n"
    exercises.check(11, token, "h")
    assert capsys.readouterr().out == "right: 11 is what rf_widgets computes too\n"
    exercises.check(11.0, token, "h")  # the same number
    assert capsys.readouterr().out.startswith("right: 11.0")
    with pytest.raises(exercises.WrongAnswer, match="Hint: add 2 per layer"):
        exercises.check(10, token, "add 2 per layer")
    assert capsys.readouterr().out == "not yet: 10 is not it. Hint: add 2 per layer\n"
    with pytest.raises(exercises.WrongAnswer, match="the answer is a string"):
        exercises.check(4, exercises.answer_token("conv4"), "a layer name")
    with pytest.raises(exercises.WrongAnswer, match="the answer is a number, you gave a string"):
        exercises.check("11", token, "h")
    with pytest.raises(exercises.WrongAnswer, match="the answer is a number, you gave True or False"):
        exercises.check(True, exercises.answer_token(1), "h")
    assert issubclass(exercises.WrongAnswer, AssertionError)
    capsys.readouterr()
    with pytest.raises(exercises.WrongAnswer):  # a huge answer is refused in one short line
        exercises.check("a" * 100_000, token, "h")
    with pytest.raises(exercises.WrongAnswer):
        exercises.check(10**5000, token, "h")
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2
    assert all(len(line) < 200 for line in printed)


def test_tokens_tell_kinds_and_values_apart():
    tokens = [exercises.answer_token(v) for v in (11, 12, "11", "conv4", "conv5", True, 1.5, [11])]
    assert len(set(tokens)) == len(tokens)
    assert exercises.answer_token(11) == exercises.answer_token(11.0)
    assert exercises.answer_token(True) != exercises.answer_token(1)
    assert exercises.answer_token(float("nan")).startswith("number:")


def _submission(tmp_path, name, answers, filename=None):
    document = json.loads((NOTEBOOKS / name).read_text())
    cells = _cells(document)
    for exercise, answer in zip(SOLUTIONS[name], answers, strict=True):
        cell = cells[exercise["cell"]]
        cell["source"] = _text(cell).replace(exercises.BLANK, f"answer = {answer}", 1)
    path = tmp_path / (filename or name)
    path.write_text(json.dumps(document))
    return path


def test_grade_reads_answers_without_running_them(tmp_path):
    solutions = NOTEBOOKS / exercises.SOLUTIONS_FILE
    path = _submission(tmp_path, NB01, ["5 + 6", "12", "__import__('os').system('false')", "'conv4'"])
    grades = exercises.grade(path, solutions=solutions)
    assert [g.status for g in grades] == ["right", "wrong", "unreadable", "right"]
    assert grades[0].given == "11"
    blank = exercises.grade(NOTEBOOKS / NB01)
    assert [g.status for g in blank] == ["not answered"] * 4


def test_reveal_and_grade_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "solved.ipynb"
    assert exercises.main(["reveal", str(NOTEBOOKS / NB01), "-o", str(out)]) == 0
    solved = json.loads(out.read_text())
    for exercise in SOLUTIONS[NB01]:
        assert _text(_cells(solved)[exercise["cell"]]).startswith(f"answer = {exercise['answer']!r}")
    solutions = str(NOTEBOOKS / exercises.SOLUTIONS_FILE)
    capsys.readouterr()
    assert exercises.main(["grade", str(out), "--as", NB01, "--solutions", solutions]) == 0
    printed = capsys.readouterr().out
    assert f"{out}: 4/4" in printed
    assert exercises.main(["grade", str(tmp_path / "missing.ipynb"), "--solutions", solutions]) == 2
    assert "missing.ipynb" in capsys.readouterr().err


def test_fill_refuses_an_answer_cell_that_is_not_blank():
    solved = exercises.fill(json.loads((NOTEBOOKS / NB01).read_text()), SOLUTIONS[NB01])
    with pytest.raises(RFError, match="has no 'answer = None' line"):
        exercises.fill(solved, SOLUTIONS[NB01])


# -- hostile submissions (issue 24): one line for the bad answer or file, the rest is graded ---------------


def _grade_cli(*paths, timeout=60):
    """``python -m rf_widgets.exercises grade`` in a child with 2 GiB of address space and a timeout, so a
    regression that allocates (or blocks) fails this test quickly instead of taking the machine with it."""
    limit = (
        "import resource, runpy, sys; "
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
        "sys.argv = ['rf_widgets.exercises', *sys.argv[1:]]; "
        "runpy.run_module('rf_widgets.exercises', run_name='__main__')"
    )
    solutions = str(NOTEBOOKS / exercises.SOLUTIONS_FILE)
    args = [sys.executable, "-c", limit, "grade", "--as", NB01, "--solutions", solutions, *map(str, paths)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    return done.returncode, done.stdout, done.stderr


def test_a_huge_repeated_string_is_unreadable_without_being_built(tmp_path):
    path = _submission(tmp_path, NB01, ["'a' * 10000000000", "13", "None", "'conv4'"])
    code, out, err = _grade_cli(path)
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    assert lines[0] == f"{path}: 2/4"
    assert lines[1].startswith("  Exercise 1: unreadable (")
    assert f"over the limit of {exercises.MAX_ANSWER_LENGTH:,}" in lines[1]
    assert len(lines[1]) < 300
    assert lines[2:] == [
        "  Exercise 2: right (13)",
        "  Exercise 3: not answered (None)",
        "  Exercise 4: right ('conv4')",
    ]
    repeated = ("[0] * 10000000000", "10000000000 * 'ab'", "('a',) * 99999999999", "'ab' * 3 * 9999999999")
    for answer in repeated:
        grades = exercises.grade(
            _submission(tmp_path, NB01, [answer, "13", "15", "'conv4'"]),
            solutions=NOTEBOOKS / exercises.SOLUTIONS_FILE,
        )
        assert grades[0].status == "unreadable", answer
        assert "over the limit" in grades[0].given, answer
        assert [g.status for g in grades[1:]] == ["right"] * 3


def test_huge_whole_numbers_are_unreadable_and_the_rest_is_graded(tmp_path):
    product = " * ".join(["99999999999"] * 500)  # 5,500 digits if it were computed (and printed)
    literal = "9" * 5000  # over Python's limit for converting digits to an int
    for answer in (product, literal, "-" + product, str(10**40)):
        grades = exercises.grade(
            _submission(tmp_path, NB01, [answer, "13", "15", "'conv3'"]),
            solutions=NOTEBOOKS / exercises.SOLUTIONS_FILE,
        )
        assert grades[0].status == "unreadable", answer[:40]
        assert len(grades[0].given) < 300
        assert [g.status for g in grades[1:]] == ["right", "right", "wrong"]
    code, out, err = _grade_cli(_submission(tmp_path, NB01, [product, "13", "15", "'conv3'"]))
    assert (code, err) == (0, "")
    assert out.splitlines()[1].startswith("  Exercise 1: unreadable (")
    assert f"more than {exercises.MAX_ANSWER_DIGITS} digits" in out


@pytest.mark.parametrize("content", ["[]", "null", "[1, 2]", '"cells"', '{"cells": null}', '{"cells": [1]}'])
def test_a_file_that_is_not_a_notebook_is_one_line_and_the_others_are_graded(tmp_path, content):
    bad = tmp_path / "bad.ipynb"
    bad.write_text(content)
    good = _submission(tmp_path, NB01, ["11", "13", "15", "'conv4'"], filename="good.ipynb")
    code, out, err = _grade_cli(bad, good)
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith("rf_widgets: error: ")
    assert "bad.ipynb" in err
    assert "not a notebook" in err
    assert out.splitlines()[0] == f"{good}: 4/4"
    with pytest.raises(RFError, match="is not a notebook"):
        exercises.grade(bad, solutions=NOTEBOOKS / exercises.SOLUTIONS_FILE, name=NB01)


def test_a_fifo_or_folder_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.ipynb"
    os.mkfifo(fifo)
    good = _submission(tmp_path, NB01, ["11", "12", "None", "x"], filename="good.ipynb")
    code, out, err = _grade_cli(fifo, tmp_path, good, timeout=30)
    assert code == 2
    assert err.count("not a regular file") == 2, err
    assert out.splitlines() == [
        f"{good}: 1/4",
        "  Exercise 1: right (11)",
        "  Exercise 2: wrong (12)",
        "  Exercise 3: not answered (None)",
        "  Exercise 4: unreadable (x)",
    ]
