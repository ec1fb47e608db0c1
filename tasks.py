"""Set up and run rf_widgets from a fresh clone with nothing but Python 3.10+.

    python3 tasks.py demo    # the Explorer on ResNet18 as a web app (Voila); --lab for JupyterLab
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


DEMO_NOTEBOOK = "notebooks/explorer_demo.ipynb"


def demo(*options: str) -> None:
    """Serve the Explorer notebook: as an app with Voila, or in JupyterLab with ``--lab``."""
    run(PYTHON, "-m", "rf_widgets", "torchvision:resnet18", "--resolution", "32", "--summary")
    extra = [o for o in options if o != "--lab"]
    if "--lab" in options:
        root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        run(PYTHON, "-m", "jupyterlab", DEMO_NOTEBOOK, *root, *extra)
    else:
        run(PYTHON, "-m", "voila", DEMO_NOTEBOOK, *extra)


def test(*options: str) -> None:
    run(PYTHON, "-m", "ruff", "check", "rf_widgets", "tests", "benchmarks", "tasks.py")
    run(PYTHON, "-m", "ruff", "format", "--check", "rf_widgets", "tests", "benchmarks", "tasks.py")
    run(PYTHON, "-m", "mypy")
    # The notebooks are tests too: nbval runs every cell and compares the printed output of the cells
    # marked `# NBVAL_CHECK_OUTPUT` (--nbval-lax), in this environment's kernel (--nbval-current-env).
    notebooks = ["notebooks", "--nbval-lax", "--nbval-current-env"]
    # The training notebook (04) trains smaller and shorter in the test run, still for real.
    os.environ.setdefault("RF_WIDGETS_QUICK", "1")
    run(PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "tests", *notebooks, *options)


def _setup_only(*options: str) -> None:
    """Nothing more: ``setup()`` has already run."""


COMMANDS = {"demo": demo, "test": test, "setup": _setup_only}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(COMMANDS)}}} [options]")
    try:
        setup()
        COMMANDS[sys.argv[1]](*sys.argv[2:])
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode)


if __name__ == "__main__":
    main()
