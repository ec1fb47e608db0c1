"""The README's Python examples run, and every ``print(...)  # value`` prints exactly that value."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def _promised(block: str) -> list[str]:
    """The comments of the print lines: what the block says it prints, in order."""
    out = []
    for line in block.splitlines():
        if line.startswith("print(") and "  # " in line:
            comment = line.split("  # ", 1)[1].strip()
            out.append(re.sub(r"\s*\(re-analysed.*\)$", "", comment))
    return out


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_prints_what_it_promises(block):
    if "torchvision" in block:
        pytest.importorskip("torchvision")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block, "README.md", "exec"), {})
    promised = _promised(block)
    assert promised, "every README example states what it prints"
    assert printed.getvalue().splitlines() == promised
