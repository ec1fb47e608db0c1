"""Set up and run rf_widgets from a fresh clone with nothing but Python 3.10+.

    python3 tasks.py demo    # the analysis of a torchvision model on the command line
    python3 tasks.py test    # lint, type check and the whole test suite

Both create ``.venv`` beside this file on first use and install the package with everything its tests
need; later runs reinstall only when ``pyproject.toml`` changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".rf_widgets-installed"


def run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True)


def setup() -> None:
    """Create the virtual environment and install the package with its test extras."""
    if sys.version_info < (3, 10):  # noqa: UP036 - this file must run on any Python 3
        sys.exit(f"rf_widgets needs Python 3.10 or newer, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


def demo() -> None:
    run(PYTHON, "-m", "rf_widgets", "torchvision:resnet18", "--resolution", "32")


def test() -> None:
    run(PYTHON, "-m", "ruff", "check", "rf_widgets", "tests", "benchmarks", "tasks.py")
    run(PYTHON, "-m", "ruff", "format", "--check", "rf_widgets", "tests", "benchmarks", "tasks.py")
    run(PYTHON, "-m", "mypy")
    run(PYTHON, "-m", "pytest", "-p", "no:cacheprovider")


COMMANDS = {"demo": demo, "test": test, "setup": lambda: None}


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(COMMANDS)}}}")
    try:
        setup()
        COMMANDS[sys.argv[1]]()
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode)


if __name__ == "__main__":
    main()
