"""Every shell command in the README runs, and every output the README quotes is what it prints.

The README's fenced blocks:

- ```sh / ```bash: one command per line (``# ...`` comments are dropped);
- ```console: ``$ command`` lines, each followed by the exact output it prints;
- ```yaml / ```json whose first line is ``# NAME``: a file the commands use, written to ``NAME``.

``_rule`` says how each command is run here; a command no rule knows fails
``test_every_readme_command_has_a_rule``, so a new README command cannot slip through untested.

- ``python -m rf_widgets ...`` / ``rf-widgets ...``: run as written with this interpreter's environment
  first on PATH, in a temporary directory holding the README's files; quoted output must match exactly.
- ``pip install ...``: run with ``--no-deps`` added in a fresh virtual environment (the package itself
  really installs and imports; its dependencies are already proven by the environment running these
  tests); the first of them, with the most extras, also resolves every dependency from the index with
  ``pip install --dry-run``.
- ``git clone URL && cd DIR``: URL is the assumed GitHub home (README: "assume it lives at ..."), so it is
  replaced by a local repository made from this working tree; the pip URL likewise. These run with the
  rest of their block, so ``cd`` carries to the next line.
- ``python3 tasks.py demo``: started on a free port in this checkout (whose ``.venv`` is set up), it must
  print the README's ResNet18 summary and its Voila page must answer HTTP 200.
- ``NOT_RUN_HERE``: commands that run elsewhere, each with the reason and a check that they do.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
HOME = "https://github.com/rf-widgets/rf_widgets"  # the location the README assumes
ENV_BIN = Path(sys.executable).parent
NOT_RUN_HERE = {
    "python3 tasks.py test": "CI's command: .ci/run runs exactly this line (checked in "
    "test_ci_runs_the_readme_test_command); running the whole suite from inside the suite would recurse",
    "python3 tasks.py test --quick": "the same suite less the slow tests and the notebooks (its pytest "
    "command is checked in test_tasks.py); running it from inside the suite would recurse",
}
FENCE = re.compile(r"^( *)```(\w+)\n(.*?)^\1```", flags=re.S | re.M)
DEMO_TIMEOUT = 240.0  # s: Voila executes the notebook (torch import, tracing) before answering /


@dataclass(frozen=True)
class Command:
    block: int
    text: str
    output: tuple[str, ...] | None  # what a ```console block says it prints; None when it says nothing

    def __str__(self) -> str:
        return self.text


def _blocks() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    return [(lang, _dedent(body, indent)) for indent, lang, body in FENCE.findall(text)]


def _dedent(body: str, indent: str) -> str:
    """A fence inside a list item is indented: strip that indent from every line."""
    return "\n".join(line.removeprefix(indent) for line in body.splitlines())


def _commands() -> list[Command]:
    commands = []
    for i, (lang, body) in enumerate(_blocks()):
        if lang in ("sh", "bash"):
            for line in body.splitlines():
                command = re.sub(r"\s+#.*$", "", line).strip()
                if command and not command.startswith("#"):
                    commands.append(Command(i, command, None))
        elif lang == "console":
            current: list[str] = []
            for line in body.splitlines():
                if line.startswith("$ "):
                    current = []
                    commands.append(Command(i, line[2:].strip(), ()))
                elif commands and commands[-1].block == i:
                    current.append(line)
                    commands[-1] = Command(i, commands[-1].text, tuple(current))
    return commands


def _files() -> dict[str, str]:
    """The README's example files: yaml/json blocks whose first line is ``# NAME``."""
    files = {}
    for lang, body in _blocks():
        first, _, rest = body.partition("\n")
        if lang in ("yaml", "json") and first.startswith("# "):
            files[first[2:].strip()] = body if lang == "yaml" else rest
    return files


def _rule(command: str) -> str:
    if command in NOT_RUN_HERE:
        return "not run here"
    if re.fullmatch(r"(python -m rf_widgets|rf-widgets) .+", command):
        return "cli"
    if command.startswith("pip install "):
        return "pip"
    if re.fullmatch(rf"git clone {re.escape(HOME)}( && cd \S+)?", command):
        return "clone"
    if command == "python3 tasks.py demo":
        return "demo"
    return "no rule"


COMMANDS = _commands()
CLI = [c for c in COMMANDS if _rule(c.text) == "cli"]
PIP = [c for c in COMMANDS if _rule(c.text) == "pip"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(ENV_BIN), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)
    return env


def _run(args: str | list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        args,
        cwd=cwd,
        env=env or _env(),
        shell=isinstance(args, str),
        executable="/bin/bash" if isinstance(args, str) else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _check(done: subprocess.CompletedProcess[str], what: str) -> str:
    assert done.returncode == 0, (
        f"{what} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


# -- the list itself --------------------------------------------------------------------------------------


def test_every_readme_command_has_a_rule():
    assert COMMANDS, "the README has shell commands"
    unknown = [c.text for c in COMMANDS if _rule(c.text) == "no rule"]
    assert not unknown, f"README commands no test runs (add a rule in {Path(__file__).name}): {unknown}"


def test_the_commands_not_run_here_are_exactly_the_listed_ones():
    in_readme = {c.text for c in COMMANDS if c.text in NOT_RUN_HERE}
    assert in_readme == set(NOT_RUN_HERE), "NOT_RUN_HERE lists a command the README no longer has"


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line.strip() for line in ci if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == "python3 tasks.py test"


def test_every_quoted_output_belongs_to_a_command_that_runs():
    quoted = [c for c in COMMANDS if c.output]
    assert quoted, "the README quotes some output"
    assert all(_rule(c.text) == "cli" for c in quoted)


# -- the command line -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def readme_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory holding the README's example files (``my_stack.yaml``)."""
    folder = tmp_path_factory.mktemp("readme-cwd")
    for name, content in _files().items():
        (folder / name).write_text(content, encoding="utf-8")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("command", CLI, ids=[c.text for c in CLI])
def test_readme_command_line(command: Command, readme_files: Path):
    if "torchvision" in command.text:
        pytest.importorskip("torchvision")
    if "timm:" in command.text:
        pytest.importorskip("timm")
    stdout = _check(_run(command.text, readme_files), command.text)
    assert stdout.strip(), f"{command} printed nothing"
    if command.output:
        assert stdout.splitlines() == list(command.output)
    if "--json" in command.text:
        assert '"schema_version": 2' in stdout


# -- installing from the assumed home, and from a clone ---------------------------------------------------


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository with this working tree's files (tracked and new, not ignored): the "GitHub" home."""
    listed = _check(
        _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], REPO), "git ls-files"
    )
    repo = tmp_path_factory.mktemp("origin") / "rf_widgets"
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    git = ["git", "-c", "user.name=readme-test", "-c", "user.email=readme-test@localhost"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "working tree"]):
        _check(_run([*git, *args], repo), "git " + args[0])
    return repo


def _localised(command: str, origin: Path) -> str:
    # file://localhost/...: pip before 24 rejects a git+file URL without a host ("looks like a path").
    return command.replace(HOME, f"file://localhost{origin}")


@pytest.mark.slow
def test_readme_source_blocks_run_from_a_clone(origin: Path, tmp_path: Path):
    """Blocks with ``git clone``: run as one script (``cd`` carries over), the clone from ``origin``.

    In them ``python3 tasks.py ...`` is replaced by a check that the clone has ``tasks.py`` where the
    command expects it: running it is the demo test's and CI's job.
    """
    blocks = sorted({c.block for c in COMMANDS if _rule(c.text) == "clone"})
    assert blocks, "the README shows how to clone the repository"
    for block in blocks:
        lines = []
        for command in (c for c in COMMANDS if c.block == block):
            rule = _rule(command.text)
            if rule == "clone":
                lines.append(_localised(command.text, origin))
            elif command.text.startswith("python3 tasks.py "):
                lines.append("test -f tasks.py && test -f pyproject.toml")
            else:
                pytest.fail(f"no way to run {command} inside a clone block")
        script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
        _check(_run(script, tmp_path), f"README block {block}:\n{script}")


@pytest.mark.slow
@pytest.mark.parametrize("command", PIP, ids=[c.text for c in PIP])
def test_readme_pip_command(command: Command, origin: Path, tmp_path: Path):
    """The package installs as the README says (no deps: they take minutes), and its dependencies resolve."""
    clone = tmp_path / "clone"
    _check(_run(["git", "clone", "-q", origin.as_uri(), str(clone)], tmp_path), "git clone")
    venv = tmp_path / "venv"
    _check(_run([sys.executable, "-m", "venv", str(venv)], tmp_path), "python -m venv")
    env = _env()
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env["PATH"]])
    env["VIRTUAL_ENV"] = str(venv)
    written = _localised(command.text, origin)
    _check(_run(f"{written} --no-deps --quiet", clone, env), written)
    where = _check(_run([str(venv / "bin" / "python"), "-c", _WHERE], tmp_path, env), "import rf_widgets")
    assert Path(where.strip()).is_relative_to(clone if " -e " in written else venv), where
    assert (venv / "bin" / "rf-widgets").exists(), "the console script is installed"
    if command == PIP[0]:  # the others resolve the same dependencies or fewer: one resolution is enough
        _check(_run(f"{written} --dry-run --ignore-installed --quiet", clone, env), f"{written} --dry-run")


_WHERE = "import rf_widgets, sys; assert 'torch' not in sys.modules; print(rf_widgets.__file__)"


# -- the demo ---------------------------------------------------------------------------------------------


def _demo_command() -> list[str]:
    """``python3 tasks.py demo``, or only its demo step when ``.venv`` was not set up by ``tasks.py``.

    Under ``python3 tasks.py test`` (CI) the set-up has just run and is recorded, so the whole command
    runs. In a ``.venv`` made by hand the set-up would reinstall into it: then only the step after the
    set-up runs (``tasks.demo``), with the same ``.venv``.
    """
    spec = importlib.util.spec_from_file_location("tasks", REPO / "tasks.py")
    assert spec is not None
    assert spec.loader is not None
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    if tasks.is_set_up("demo"):
        return [shutil.which("python3") or sys.executable, "tasks.py", "demo"]
    return [sys.executable, "-c", "import sys, tasks; tasks.demo(*sys.argv[1:])"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_readme_demo_command_serves_the_explorer(tmp_path: Path):
    """``python3 tasks.py demo`` prints the README's summary and serves a page that answers HTTP 200.

    Voila gets a free port and no browser (``tasks.py demo`` passes extra options on to it); the demo
    serves until stopped, so the test stops it (and its kernel: the whole process group).
    """
    assert any(c.text == "python3 tasks.py demo" for c in COMMANDS)
    venv = REPO / ".venv"
    if Path(sys.prefix).resolve() != venv.resolve():
        pytest.skip(f"the demo runs in {venv}; these tests run in {sys.prefix}")
    for tool in ("voila", "torchvision"):
        pytest.importorskip(tool)
    port = _free_port()
    args = [*_demo_command(), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"]
    log = tmp_path / "demo.log"
    env = _env()
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    with log.open("w") as out:
        process = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        status = _wait_for_page(f"http://127.0.0.1:{port}/", process, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    assert status == 200, log.read_text()[-3000:]
    summary = next(
        c for c in COMMANDS if c.text.startswith("rf-widgets torchvision:resnet18 --resolution 32")
    )
    printed = log.read_text().splitlines()
    assert summary.output is not None
    assert all(line in printed for line in summary.output), log.read_text()[-3000:]


def _wait_for_page(url: str, process: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + DEMO_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"tasks.py demo exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=DEMO_TIMEOUT) as response:
                page = response.read().decode("utf-8", errors="replace")
                assert "rf_widgets" in page or "jupyter" in page.lower(), page[:2000]
                return int(response.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"tasks.py demo did not answer {url} in {DEMO_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")


def test_commands_are_parsed_as_the_readme_shows_them():
    """The parser itself: indented fences (in a list item) and console output are read."""
    texts = [c.text for c in COMMANDS]
    assert "python3 tasks.py demo" in texts
    assert any(_rule(t) == "clone" for t in texts)
    assert "my_stack.yaml" in _files()
    assert all(shlex.split(t) for t in texts)
