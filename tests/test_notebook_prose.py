"""The notebooks say what they show: every figure their prose (or the README) quotes from a run is in the
stored outputs it names, and the stored outputs hold no machine paths or build tags.

How prose declares its figures (an HTML comment, invisible once rendered):

- ``<!-- figures: CELL CELL ... -->`` in a markdown cell names the code cells whose stored outputs the
  cell's figures come from; in the README the cells are ``NOTEBOOK.ipynb#CELL`` and the comment covers the
  paragraph (or list item) it stands in.
- ``<!-- not from a run: TOKEN; TOKEN; ... -->`` lists the figures of the cell that are no measurement of
  this run (the paper's numbers, the settings of the experiment).

A *figure* is a number with a decimal point, or with a unit: ``%``, ``points``, ``s``, ``ms``, ``min`` /
``minutes``, ``x`` (a ratio, not ``3x3``), ``k``, ``M``, ``G``. Every figure of a notebook's markdown, and
of a README paragraph with a ``figures`` comment, must be the rounding of a number with the same unit in
the stored outputs named (``46%`` quotes ``46.4%``, ``10k`` quotes ``9,978``), or be listed as not from a
run. So a re-run that changes a figure fails here until the prose is updated, and so does a figure
changed by hand. Code spans, versions and arXiv numbers are not figures.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("[0-9]*.ipynb"))

FIGURES = re.compile(r"<!--\s*figures:\s*(.*?)-->", re.S)
NOT_FROM_A_RUN = re.compile(r"<!--\s*not from a run:\s*(.*?)-->", re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
KEYED = re.compile(r"<!--@(.*?)-->", re.S)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
LINK_TARGET = re.compile(r"\]\([^)]*\)")
ARXIV = re.compile(r"arXiv[: ]\s*\d{4}\.\d{4,5}")
VERSION = re.compile(r"\b\d+\.\d+\.\d+\b")  # rfa-toolbox 1.7.0, torch 2.14.1
UNITS = {
    "%": "%",
    "points": "points",
    "point": "points",
    "s": "s",
    "ms": "ms",
    "min": "min",
    "minutes": "min",
    "minute": "min",
    "x": "x",
    "k": "k",
    "M": "M",
    "G": "G",
}
# a number (with thousands separators and decimals), then an optional unit that is not the start of a word
NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+−])?(?P<number>\d{1,3}(?:,\d{3})+|\d+)(?P<decimals>\.\d+)?"
    r"(?:(?P<gap>[ -]?)(?P<unit>%|points?|ms|s|minutes?|min|x|k|M|G)(?![\w]))?"
)
SCALE = {"k": 1e3, "M": 1e6, "G": 1e9}


@dataclass(frozen=True)
class Number:
    text: str
    value: float
    decimals: int
    unit: str  # "" for a plain number


def numbers(text: str) -> list[Number]:
    """Every number of ``text`` with its unit."""
    found = []
    for m in NUMBER.finditer(text):
        unit = m.group("unit") or ""
        # "3x3" and "16x16" are sizes, not ratios: an x must not be followed by a digit
        if unit == "x" and text[m.end() : m.end() + 1].isdigit():
            unit = ""
        # a unit letter only counts right after the number ("66.6k", "3.66x"), units in words after a space
        if unit in ("k", "M", "G", "x") and m.group("gap"):
            unit = ""
        decimals = m.group("decimals") or ""
        value = float(m.group("number").replace(",", "") + decimals)
        found.append(Number(m.group(0).strip(), value, max(len(decimals) - 1, 0), UNITS.get(unit, "")))
    return found


def figures(text: str) -> list[Number]:
    """The figures of a piece of prose: numbers with decimals or units, outside comments and code."""
    for pattern in (COMMENT, CODE, LINK_TARGET, ARXIV, VERSION):
        text = pattern.sub(" ", text)
    return [n for n in numbers(text) if n.decimals or n.unit]


def quotes(figure: Number, printed: Number) -> bool:
    """``figure`` (from prose) is ``printed`` (from an output) as written or rounded; signs are not
    compared ("3.4 points lower" quotes "-3.4 points")."""
    value = printed.value
    if figure.unit in SCALE and printed.unit in ("", figure.unit):
        value = value / SCALE[figure.unit] if printed.unit == "" else value
    elif figure.unit != printed.unit:
        return False
    return abs(abs(value) - figure.value) <= 0.5 * 10**-figure.decimals + 1e-9


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def output_text(cell: dict) -> str:
    """What a code cell's stored outputs print: streams, and the plain text of results."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(_text(output["text"]))
        elif output["output_type"] in ("execute_result", "display_data"):
            parts.append(_text(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _notebook(name: str) -> dict:
    return json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))


def _cells_by_id(document: dict) -> dict[str, dict]:
    return {cell["id"]: cell for cell in document["cells"]}


def _exempt(prose: str) -> set[str]:
    """The figures listed as not from a run (separated by semicolons)."""
    return {t.strip() for m in NOT_FROM_A_RUN.finditer(prose) for t in m.group(1).split(";") if t.strip()}


def quoted_figures(prose: str) -> list[tuple[Number, str | None]]:
    """The figures of ``prose``, each with its key: the words of ``<!--@KEY-->`` right after it, which
    narrow the figure to the output lines that hold every one of them (a table row's layer name and map
    size, say)."""
    found: list[tuple[Number, str | None]] = []
    start = 0
    for m in KEYED.finditer(prose):
        segment = figures(prose[start : m.start()])
        assert segment, f"<!--@{m.group(1)}--> follows no figure"
        found += [(f, None) for f in segment[:-1]] + [(segment[-1], m.group(1).strip())]
        start = m.end()
    return found + [(f, None) for f in figures(prose[start:])]


def _keyed(key: str, lines: list[str], figure: Number) -> list[Number]:
    """The numbers of the output lines that hold every word of ``key``; a last word ``#N`` keeps only the
    N-th number of each line that has the figure's unit (a row that prints a mean and the values of
    three seeds, say)."""
    words = key.split()
    nth = int(words.pop()[1:]) if words and re.fullmatch(r"#\d+", words[-1]) else None
    found = []
    for line in lines:
        if set(words) <= set(line.split()):
            same = [n for n in numbers(line) if nth is None or n.unit == figure.unit]
            found += same if nth is None else same[nth - 1 : nth]
    return found


def bumped(figure: Number) -> Number:
    """``figure`` with its last digit moved up by one (87.4% -> 87.5%), as a hand edit would."""
    step = 10**-figure.decimals
    return Number(f"{figure.text} (+{step:g})", figure.value + step, figure.decimals, figure.unit)


def unquoted(prose: str, sources: dict[str, str], bump: int | None = None) -> list[str]:
    """The figures of ``prose`` that no output in ``sources`` (name -> printed text) prints.

    ``prose`` carries its own comments: the cells named by ``figures`` (keys of ``sources``), the
    tokens that are ``not from a run`` and the keys of single figures. ``bump`` changes the figure of that
    index by one in its last digit first (to show that a changed figure is caught).
    """
    named = [name for m in FIGURES.finditer(prose) for name in m.group(1).split()]
    missing = [name for name in named if name not in sources]
    assert missing == [], f"the figures comment names cells that do not exist: {missing}"
    lines = [line for name in named for line in sources[name].splitlines()]
    printed = [n for line in lines for n in numbers(line)]
    exempt = _exempt(prose)
    problems = []
    for index, (figure, key) in enumerate(quoted_figures(prose)):
        if figure.text in exempt or figure.text.lstrip("-+−") in exempt:
            continue
        if index == bump:
            figure = bumped(figure)
        candidates = printed if key is None else _keyed(key, lines, figure)
        if not any(quotes(figure, number) for number in candidates):
            problems.append(figure.text if key is None else f"{figure.text} (@{key})")
    return problems


# -- the notebooks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_figure_in_the_prose_is_in_the_outputs_it_names(name):
    document = _notebook(name)
    sources = {cell["id"]: output_text(cell) for cell in document["cells"] if cell["cell_type"] == "code"}
    problems = {}
    for cell in document["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        prose = _text(cell["source"])
        wrong = unquoted(prose, sources)
        if wrong:
            problems[cell["id"]] = wrong
    assert problems == {}, (
        "figures in the prose that the named outputs do not print (update the prose, or name the cell "
        f"with <!-- figures: ID -->, or list them with <!-- not from a run: ... -->): {problems}"
    )


def _readme_paragraphs() -> list[str]:
    """The README's paragraphs and list items that carry a figures comment."""
    blocks = re.split(r"\n\s*\n|\n(?=- )", README.read_text(encoding="utf-8"))
    return [block for block in blocks if FIGURES.search(block)]


def test_the_readme_quotes_notebook_figures_from_their_stored_outputs():
    paragraphs = _readme_paragraphs()
    assert len(paragraphs) >= 3, "the README's notebook figures carry their figures comments"
    sources = {}
    for name in NAMES:
        for cid, cell in _cells_by_id(_notebook(name)).items():
            if cell["cell_type"] == "code":
                sources[f"{name}#{cid}"] = output_text(cell)
    problems = {block[:60]: unquoted(block, sources) for block in paragraphs}
    assert {k: v for k, v in problems.items() if v} == {}


# -- the checker itself: it finds what it must, and a changed figure fails ---------------------------------


def test_figures_are_found_with_their_units():
    text = (
        "reaches **84.0%** (3.4 points lower), 5.7% of 1.18M parameters (66.6k), 3.66x the compute, "
        "epochs of 90.5 s, a 14-minute run, 3x3 kernels at 16x16 in 2 stages, `RF_WIDGETS_QUICK=1`, "
        "arXiv 2106.12307, [link](https://x.org/1.5%), 0.94 <!-- figures: a -->"
    )
    assert [f.text for f in figures(text)] == [
        "84.0%",
        "3.4 points",
        "5.7%",
        "1.18M",
        "66.6k",
        "3.66x",
        "90.5 s",
        "14-minute",
        "0.94",
    ]


def test_a_figure_quotes_the_printed_number_it_rounds():
    (printed,) = numbers("46.4%")
    assert quotes(figures("46%")[0], printed)
    assert not quotes(figures("47%")[0], printed)
    assert not quotes(figures("46.3%")[0], printed)
    assert not quotes(figures("46 s")[0], printed)  # another unit
    assert quotes(figures("10k")[0], numbers("9,978")[0])
    assert quotes(figures("703k")[0], numbers("703,386")[0])
    assert quotes(figures("3.4 points")[0], numbers("-3.4 points")[0])
    assert quotes(figures("14-minute")[0], numbers("13.7 min")[0])


def test_a_figure_changed_by_hand_fails():
    sources = {"out": "original    87.4%   646.7 s\ntrimmed     84.0%   296.8 s"}
    prose = "The trimmed network reaches 84.0% against 87.4% (646.7 s). <!-- figures: out -->"
    assert unquoted(prose, sources) == []
    assert unquoted(prose.replace("87.4%", "87.5%"), sources) == ["87.5%"]
    assert unquoted(prose.replace("646.7 s", "646.8 s"), sources) == ["646.8 s"]
    assert unquoted(prose, sources, bump=1) == ["87.4% (+0.1)"]
    # a figure whose changed value is printed elsewhere needs a key naming its line
    table = {"out": "a  0.57  0.66\nb  0.58  0.60"}
    assert unquoted("a: 0.57 <!-- figures: out -->", table, bump=0) == []
    assert unquoted("a: 0.57<!--@a --> <!-- figures: out -->", table) == []
    assert unquoted("a: 0.57<!--@a --> <!-- figures: out -->", table, bump=0) == ["0.57 (+0.01) (@a)"]
    # within one row, #N picks the N-th number of the figure's unit
    row = {"out": "performance  65.4% ± 0.9%  65.5% 66.4% 64.1%"}
    assert unquoted("65.4%<!--@performance #1--> <!-- figures: out -->", row) == []
    assert unquoted("65.4%<!--@performance #1--> <!-- figures: out -->", row, bump=0) != []
    assert unquoted("65.5%<!--@performance #1--> <!-- figures: out -->", row) != []
    assert unquoted(prose.replace("<!-- figures: out -->", ""), sources) == ["84.0%", "87.4%", "646.7 s"]
    exempt = prose.replace("87.4%", "83.8%") + " <!-- not from a run: 83.8%; 25 minutes -->"
    assert unquoted(exempt, sources) == []


@pytest.mark.parametrize("name", NAMES)
def test_a_figure_of_the_stored_prose_changed_by_hand_fails(name):
    """Each quoted figure of the notebook, moved by one in its last digit, fails the check. (A figure
    whose changed value another named output line also prints would pass: such a figure needs a key,
    ``<!--@KEY-->``, naming its line.)"""
    document = _notebook(name)
    sources = {c["id"]: output_text(c) for c in document["cells"] if c["cell_type"] == "code"}
    undetected, tried = [], 0
    for cell in document["cells"]:
        prose = _text(cell["source"])
        if cell["cell_type"] != "markdown" or not FIGURES.search(prose):
            continue
        exempt = _exempt(prose)
        for index, (figure, _key) in enumerate(quoted_figures(prose)):
            if figure.text in exempt or figure.text.lstrip("-+−") in exempt:
                continue
            tried += 1
            if unquoted(prose, sources, bump=index) == []:
                undetected.append((cell["id"], figure.text))
    assert undetected == [], "give these figures a key: " + str(undetected)
    if name == "04_trim_and_train.ipynb":
        assert tried >= 20


# -- no machine paths or build tags in what the notebooks store -------------------------------------------

MACHINE = re.compile(
    r"/(?:work|home|root|tmp|Users|usr|opt|var|mnt|private)/[^\s'\"`]*"  # an absolute path of this machine
    r"|[A-Za-z]:\\[^\s'\"`]*"  # a Windows path
    r"|site-packages"
    r"|\+cu\d+|\+cpu\b|\+rocm[\d.]*|\+git[0-9a-f]+"  # a build tag of torch (or a local version)
)


def stored_text(cell: dict) -> str:
    parts = [output_text(cell)]
    for output in cell.get("outputs", []):
        for kind, value in output.get("data", {}).items():
            if kind.startswith("text/") or kind.endswith("json"):
                parts.append(value if isinstance(value, str) else json.dumps(value))
        if output["output_type"] == "error":
            parts.append("\n".join(output.get("traceback", [])))
    return "\n".join(parts)


@pytest.mark.parametrize("name", [*NAMES, "explorer_demo.ipynb"])
def test_stored_outputs_hold_no_machine_paths_or_build_tags(name):
    document = _notebook(name)
    found = {
        cell.get("id"): MACHINE.findall(stored_text(cell))
        for cell in document["cells"]
        if cell["cell_type"] == "code"
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_the_machine_pattern_finds_paths_and_tags():
    printed = "regenerated by `python run.py --out /work/wt/evidence/data` (x86_64, torch 2.14.1+cu130)"
    assert MACHINE.findall(printed) == ["/work/wt/evidence/data", "+cu130"]
    assert MACHINE.findall("torch 2.14.1, 3x3 kernels, notebooks/data/evidence_32px.json") == []
