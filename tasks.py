"""Set up and run rf_widgets from a fresh clone with nothing but Python 3.10+.

    python3 tasks.py demo           # the Explorer on ResNet18 as a web app (Voila); --lab for JupyterLab
    python3 tasks.py test           # lint, type check and the whole test suite (notebooks included)
    python3 tasks.py test --quick   # while working: everything but the `slow` tests and the notebooks

Both create ``.venv`` beside this file on first use. ``demo`` installs the package with the ``demo`` extra
(torch, Voila, JupyterLab), ``test`` with the ``dev`` extra (what the tests, lint and type check need).
torch comes from the PyTorch CPU wheel index (``pip install --index-url
https://download.pytorch.org/whl/cpu torch torchvision``: about 200 MB against several GB for the CUDA
build); when that index cannot be reached, from the default index. Later runs reinstall only when
``pyproject.toml`` changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".rf_widgets-installed"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
EXTRAS = {"demo": "demo", "test": "dev", "setup": "dev"}
"""The extra each command installs; ``dev`` contains ``demo``."""
COVERS = {"dev": {"dev", "demo"}, "demo": {"demo"}}


def run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True)


def _pyproject_hash() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def installed_extras() -> set[str]:
    """The extras ``.venv`` holds for the current ``pyproject.toml`` (none when it changed since)."""
    try:
        stamp = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return set()
    if not isinstance(stamp, dict) or stamp.get("pyproject") != _pyproject_hash():
        return set()
    return set(stamp.get("extras", []))


def is_set_up(command: str) -> bool:
    """Whether ``.venv`` already holds what ``command`` (demo, test) needs."""
    return any(EXTRAS[command] in COVERS.get(extra, set()) for extra in installed_extras())


def _reachable(url: str, timeout: float = 10.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _size(folder: Path) -> int:
    """Bytes in the files under ``folder`` (each hard-linked file once, symbolic links not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for path, _, files in os.walk(folder):
        for name in files:
            info = os.lstat(os.path.join(path, name))
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def install_torch() -> None:
    """torch and torchvision from the PyTorch CPU index, or nothing here when it cannot be reached."""
    if not _reachable(TORCH_CPU_INDEX + "/torch/"):
        print(
            f"the PyTorch CPU index {TORCH_CPU_INDEX} cannot be reached: torch comes from the default "
            "index (on Linux the CUDA build, several GB)",
            flush=True,
        )
        return
    run(PYTHON, "-m", "pip", "install", "--quiet", "--index-url", TORCH_CPU_INDEX, "torch", "torchvision")


def setup(command: str) -> None:
    """Create the virtual environment and install the package with the extra ``command`` needs."""
    if sys.version_info < (3, 10):  # noqa: UP036 - this file must run on any Python 3
        sys.exit(f"rf_widgets needs Python 3.10 or newer, this is {sys.version.split()[0]}")
    if is_set_up(command):
        return
    start = time.monotonic()
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    extra = EXTRAS[command]
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    install_torch()
    run(PYTHON, "-m", "pip", "install", "--quiet", "-e", f".[{extra}]")
    extras = sorted(installed_extras() | {extra})
    STAMP.write_text(json.dumps({"pyproject": _pyproject_hash(), "extras": extras}))
    minutes, seconds = divmod(round(time.monotonic() - start), 60)
    print(
        f"set-up done in {minutes} min {seconds:02d} s; {VENV} holds {_size(VENV) / 1e9:.2f} GB",
        flush=True,
    )


DEMO_NOTEBOOK = "notebooks/explorer_demo.ipynb"


def serve(*args: str | Path) -> None:
    """Run a server until it exits or the first Ctrl-C (or SIGTERM), which stops it and its kernels.

    The server runs in its own session: the terminal's Ctrl-C reaches only this process, which asks the
    server to stop with SIGTERM (Jupyter's own Ctrl-C handler would ask "Shutdown this server (y/[n])?").
    """
    print("+", " ".join(str(a) for a in args), flush=True)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    server = None
    try:
        server = subprocess.Popen([str(a) for a in args], cwd=ROOT, start_new_session=True)
        code = server.wait()
    except KeyboardInterrupt:
        print("\nstopping the server", flush=True)
        if server is None:
            return
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        return
    if code:
        raise subprocess.CalledProcessError(code, args)


def demo(*options: str) -> None:
    """Serve the Explorer notebook: as an app with Voila, or in JupyterLab with ``--lab``."""
    run(PYTHON, "-m", "rf_widgets", "torchvision:resnet18", "--resolution", "32", "--summary")
    extra = [o for o in options if o != "--lab"]
    if "--lab" in options:
        root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        serve(PYTHON, "-m", "jupyterlab", DEMO_NOTEBOOK, *root, *extra)
    else:
        serve(PYTHON, "-m", "voila", DEMO_NOTEBOOK, *extra)


def test(*options: str) -> None:
    """Lint, type check and pytest; ``--quick`` leaves out the `slow` tests and the notebooks."""
    quick = "--quick" in options
    options = tuple(o for o in options if o != "--quick")
    run(PYTHON, "-m", "ruff", "check", "rf_widgets", "tests", "benchmarks", "tasks.py")
    run(PYTHON, "-m", "ruff", "format", "--check", "rf_widgets", "tests", "benchmarks", "tasks.py")
    run(PYTHON, "-m", "mypy")
    # The notebooks are tests too: nbval runs every cell and compares the printed output of the cells
    # marked `# NBVAL_CHECK_OUTPUT` (--nbval-lax), in this environment's kernel (--nbval-current-env).
    notebooks = [] if quick else ["notebooks", "--nbval-lax", "--nbval-current-env"]
    selection = ["-m", "not slow"] if quick else []
    # The training notebook (04) trains smaller and shorter in the test run, still for real.
    os.environ.setdefault("RF_WIDGETS_QUICK", "1")
    # One pytest-xdist worker per core (at most 4: each holds torch and its models); a file's tests, and
    # so a notebook's cells, stay together on one worker (--dist loadfile). `-n 0` runs in one process.
    workers = min(4, os.cpu_count() or 1)
    # The long files go first (tests/conftest.py LONGEST_FIRST): keep that order.
    parallel = ["-n", str(workers), "--dist", "loadfile", "--no-loadscope-reorder"] if workers > 1 else []
    # Each worker computes with one thread per core it has: torch's default (a thread per core in every
    # process) makes the workers' OpenMP threads wait on each other, up to 100x slower on small tensors.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    pytest = [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", *parallel, "--durations=25"]
    run(*pytest, *selection, "tests", *notebooks, *options)


COMMANDS = {"demo": demo, "test": test, "setup": lambda *options: None}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(COMMANDS)}}} [options]")
    try:
        setup(sys.argv[1])
        COMMANDS[sys.argv[1]](*sys.argv[2:])
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
