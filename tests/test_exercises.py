"""Notebook exercises: blank as shipped, every solution accepted, typical mistakes refused with a hint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rf_widgets import exercises
from rf_widgets.errors import RFError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOLUTIONS = json.loads((NOTEBOOKS / exercises.SOLUTIONS_FILE).read_text())
WITH_EXERCISES = sorted(SOLUTIONS)


def _cells(document):
    return {cell["id"]: cell for cell in document["cells"]}


def _text(cell):
    return exercises._source(cell)


def _stream(cell):
    texts = [o.get("text", "") for o in cell.get("outputs", []) if o["output_type"] == "stream"]
    return "".join("".join(t) if isinstance(t, list) else t for t in texts)


def _check_cell(document, answer_id):
    """The code cell right after an answer cell: the one that calls check()."""
    ids = [cell["id"] for cell in document["cells"]]
    following = document["cells"][ids.index(answer_id) + 1]
    assert "check(" in _text(following), f"the cell after '{answer_id}' does not call check()"
    return following


def test_every_notebook_with_a_check_call_has_solutions():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        calls = "check(answer" in path.read_text()
        assert calls == (path.name in SOLUTIONS), path.name


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_the_student_copy_is_blank_and_shows_no_solution(name):
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
        shown = _text(cell) + _text(check) + _stream(check)
        assert exercises.NOT_ANSWERED in _stream(check)
        assert repr(exercise["answer"]) not in shown
        assert "right:" not in _stream(check)
    errors = [c["id"] for c in document["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == []
    assert "solutions.json" not in (NOTEBOOKS / name).read_text()


def _execute(document, tmp_path):
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


@pytest.mark.slow
@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_solutions_are_accepted_and_typical_mistakes_refused_with_a_hint(name, tmp_path):
    shipped = json.loads((NOTEBOOKS / name).read_text())
    student = _execute(shipped, tmp_path)  # as handed out: runs top to bottom, nothing answered
    assert [
        c["id"] for c in student["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"
    ] == []
    for exercise in SOLUTIONS[name]:
        assert _stream(_check_cell(student, exercise["cell"])) == exercises.NOT_ANSWERED + "\n"
    solved = _execute(exercises.fill(shipped, SOLUTIONS[name], "answer"), tmp_path)
    errors = [
        (c["id"], o["ename"])
        for c in solved["cells"]
        for o in c.get("outputs", [])
        if o["output_type"] == "error"
    ]
    assert errors == []
    for exercise in SOLUTIONS[name]:
        assert _stream(_check_cell(solved, exercise["cell"])).startswith("right:"), exercise["name"]
    # the other checked outputs do not depend on the answers: the solved run prints what is shipped
    shipped_cells, solved_cells = _cells(shipped), _cells(solved)
    checks = {_check_cell(shipped, e["cell"])["id"] for e in SOLUTIONS[name]}
    for cid, cell in shipped_cells.items():
        if cid not in checks and _text(cell).startswith("# NBVAL_CHECK_OUTPUT"):
            assert _stream(solved_cells[cid]) == _stream(cell), cid

    wrong = _execute(exercises.fill(shipped, SOLUTIONS[name], "wrong"), tmp_path)
    for exercise in SOLUTIONS[name]:
        check = _check_cell(wrong, exercise["cell"])
        text = _stream(check)
        assert text.startswith(f"not yet: {exercise['wrong']!r} is not it."), text
        assert "Hint: " in text
        assert len(text.split("Hint: ", 1)[1].strip()) > 20, "the hint says something"
        assert [o["ename"] for o in check["outputs"] if o["output_type"] == "error"] == ["WrongAnswer"]


def test_check_says_not_answered_right_or_wrong_with_a_hint(capsys):
    assert exercises.check(None, 11, "h") is False
    assert capsys.readouterr().out.startswith("not answered yet")
    assert exercises.check(11, 11, "h") is True
    assert capsys.readouterr().out.startswith("right: 11")
    assert exercises.check(11.0, 11, "h") is True  # the same number
    capsys.readouterr()
    with pytest.raises(exercises.WrongAnswer, match="Hint: add 2 per layer"):
        exercises.check(10, 11, "add 2 per layer")
    assert capsys.readouterr().out == "not yet: 10 is not it. Hint: add 2 per layer\n"
    with pytest.raises(exercises.WrongAnswer, match="the answer is a string"):
        exercises.check(4, "conv4", "a layer name")
    with pytest.raises(exercises.WrongAnswer, match="the answer is a whole number, you gave a string"):
        exercises.check("11", 11, "h")
    assert issubclass(exercises.WrongAnswer, AssertionError)


def _submission(tmp_path, name, answers):
    document = json.loads((NOTEBOOKS / name).read_text())
    cells = _cells(document)
    for exercise, answer in zip(SOLUTIONS[name], answers, strict=True):
        cell = cells[exercise["cell"]]
        cell["source"] = _text(cell).replace(exercises.BLANK, f"answer = {answer}", 1)
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_grade_reads_answers_without_running_them(tmp_path):
    name = "01_receptive_fields_from_scratch.ipynb"
    solutions = NOTEBOOKS / exercises.SOLUTIONS_FILE
    path = _submission(tmp_path, name, ["5 + 6", "12", "__import__('os').system('false')", "'conv4'"])
    grades = exercises.grade(path, solutions=solutions)
    assert [g.status for g in grades] == ["right", "wrong", "unreadable", "right"]
    assert grades[0].given == "11"
    blank = exercises.grade(NOTEBOOKS / name)
    assert [g.status for g in blank] == ["not answered"] * 4


def test_reveal_and_grade_from_the_command_line(tmp_path, capsys):
    name = "01_receptive_fields_from_scratch.ipynb"
    out = tmp_path / "solved.ipynb"
    assert exercises.main(["reveal", str(NOTEBOOKS / name), "-o", str(out)]) == 0
    solved = json.loads(out.read_text())
    for exercise in SOLUTIONS[name]:
        assert _text(_cells(solved)[exercise["cell"]]).startswith(f"answer = {exercise['answer']!r}")
    solutions = str(NOTEBOOKS / exercises.SOLUTIONS_FILE)
    capsys.readouterr()
    assert exercises.main(["grade", str(out), "--as", name, "--solutions", solutions]) == 0
    printed = capsys.readouterr().out
    assert f"{out}: 4/4" in printed
    assert exercises.main(["grade", str(tmp_path / "missing.ipynb"), "--solutions", solutions]) == 2
    assert "missing.ipynb" in capsys.readouterr().err


def test_fill_refuses_an_answer_cell_that_is_not_blank():
    name = "01_receptive_fields_from_scratch.ipynb"
    solved = exercises.fill(json.loads((NOTEBOOKS / name).read_text()), SOLUTIONS[name])
    with pytest.raises(RFError, match="has no 'answer = None' line"):
        exercises.fill(solved, SOLUTIONS[name])
