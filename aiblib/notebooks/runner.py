"""Running the project's notebooks as ``make`` does: papermill, with the output streamed.

- Each notebook gets only the parameters it declares (its ``parameters`` cell): the
  parameter file as ``params_file`` to a notebook whose configuration is a parameter file
  (00, 01: it reads the whole file itself), and of the ``-p`` values those it declares, plus,
  for such a notebook, any configuration key (it reaches the configuration through the
  notebook's variables). 02 and 03 use the run's saved configuration and get only their
  declared ``-p`` values. Nothing else is passed, so papermill has nothing to warn about.
- The kernel's output (training progress, scores) streams to this terminal while the
  executed copy records everything; the kernel talks over IPC, not TCP.
- A failing cell becomes :class:`NotebookFailed`: one line (the cell's exception and where
  the executed notebook with its traceback is), exit status 2 for a user's mistake.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import papermill
import yaml
from jupyter_client.manager import KernelManager
from papermill.exceptions import PapermillExecutionError

from aiblib.config import CONFIG_KEYS, parse_overrides
from aiblib.errors import ConfigError, MissingFile, UserError, WorkerFailed
from aiblib.paths import project_path, project_root

__all__ = ["NotebookFailed", "declared_parameters", "notebook_parameters", "run_notebook", "run_inputs", "run_record",
           "completed", "code_digest", "parse_values", "run_given", "KERNEL_NAME", "NOTEBOOKS", "RUN_RECORD"]

KERNEL_NAME = "aiblib"  # the kernel `make setup` installs into .venv
RUN_RECORD = "run.json"  # what `aiblib run` writes in DIR/NAME/ once 01 and 02 succeeded (run_record, completed)
NOTEBOOKS = project_path("notebooks")
PACKAGE = Path(__file__).resolve().parents[1]  # aiblib/
# what shapes a run's training and evaluation (sub-packages of aiblib, notebooks): a finished run is done again when
# their digest changes, and not when only reports, the CLI, tools, tests or prose changed
SHAPING_CODE = ("model", "data", "config", "storage", "training", "evaluation",
                "01-train.ipynb", "02-evaluate-cross-domain.ipynb")
# what a run record holds beside its inputs (for the reader): not compared by completed(). ``job``: the launcher,
# job id and restarts of the sweep job that ran it (aiblib.sweeps), or of the Slurm job it ran in
NOT_INPUTS = ("commit", "seconds", "training", "job")
# exceptions raised in a notebook that need only their line: a user's input was wrong (aiblib.errors.UserError and its
# kinds: exit status 2), a data-loader worker died (1), a training stopped. Any other exception (a ValueError from a
# library included) is a bug: its traceback is printed as well.
USER_ERROR_NAMES = frozenset({
    "UserError", "ConfigError", "MissingFile", "AlreadyExists", "StorageError", "RunLockedError", "DataError",
    "CheckpointError", "NonFiniteLossError", "Interrupted", "KeyboardInterrupt", "WorkerFailed",
})


class NotebookFailed(UserError):
    """A cell raised; ``user_mistake`` tells whether the exception is a user's input error."""

    def __init__(self, message: str, *, user_mistake: bool, traceback: list[str]) -> None:
        super().__init__(message)
        self.user_mistake = user_mistake
        self.traceback = traceback
        self.exit_status = 2 if user_mistake else 1


class IPCKernelManager(KernelManager):
    """A kernel on IPC sockets (papermill's default TCP transport makes every kernel warn).

    ``running`` lists the kernels started and not yet finished, for :func:`_forwarding_signals`.
    """

    running: list["IPCKernelManager"] = []

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("transport", "ipc")
        # the sockets live in a private temporary folder, not in the kernel's working directory
        kwargs.setdefault("ip", str(Path(tempfile.mkdtemp(prefix="aiblib-kernel-")) / "kernel"))
        super().__init__(**kwargs)
        IPCKernelManager.running.append(self)


@contextlib.contextmanager
def _forwarding_signals() -> Iterator[None]:
    """While inside, SIGINT and SIGTERM go to the running kernels (papermill starts them in their own
    session, out of the terminal's reach): a training there saves ``last.pth`` and stops, and a
    second Ctrl-C stops it at once. A third Ctrl-C, for a kernel that does not answer, stops this
    process."""
    seen: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        seen.append(signum)
        if signum == signal.SIGINT and seen.count(signal.SIGINT) > 2:
            raise KeyboardInterrupt
        for km in IPCKernelManager.running:
            if km.has_kernel:
                km.signal_kernel(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for km in IPCKernelManager.running:  # the kernels have ended: their socket folders go
            shutil.rmtree(Path(km.ip).parent, ignore_errors=True)
        IPCKernelManager.running.clear()


def declared_parameters(notebook: Path) -> dict[str, dict]:
    """The notebook's ``parameters`` cell: name -> papermill's description (``default`` as written)."""
    return dict(papermill.inspect_notebook(str(notebook)))


def notebook_parameters(notebook: Path, *, params_file: str | Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """What the notebook receives (see the module docstring)."""
    declared = declared_parameters(notebook)
    # 00 and 01 build their configuration from a parameter file; 02 and 03 from the run's saved one
    reads_file = declared.get("params_file", {}).get("default", "None") != "None"
    params: dict[str, Any] = {}
    if params_file is not None and reads_file:
        params["params_file"] = str(params_file)
    elif params_file is not None and "params_file" not in declared:
        try:
            values = yaml.safe_load(_parameter_file(params_file).read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{project_path(params_file)}: not valid YAML ({' '.join(str(exc).split())})") from None
        params.update({k: v for k, v in values.items() if k in declared})
    params.update({k: v for k, v in given.items() if k in declared or (reads_file and k in CONFIG_KEYS)})
    return params


def _parameter_file(params_file: str | Path) -> Path:
    """The parameter file, a relative path under the project root; MissingFile when it is not there."""
    path = project_path(params_file)
    if not path.is_file():
        raise MissingFile(f"parameter file not found: {path}")
    return path


def run_notebook(notebook: Path, output: Path, *, parameters: dict[str, Any], cwd: Path | None = None,
                 label: str = "") -> float:
    """Execute ``notebook`` into ``output`` with ``parameters``, streaming its output; the seconds it took.

    ``cwd``: where the kernel starts (default: the notebook's folder, as Jupyter does).
    Raises :class:`NotebookFailed` when a cell raises (``output`` then holds the traceback).
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"{label}{notebook.stem}: running, executed copy -> {output}", flush=True)
    try:
        with _forwarding_signals():
            papermill.execute_notebook(
                str(notebook), str(output), parameters=parameters, kernel_name=KERNEL_NAME, progress_bar=False,
                cwd=str(cwd or notebook.parent), stdout_file=sys.stdout, stderr_file=sys.stderr,
                kernel_manager_class=IPCKernelManager,
            )
    except PapermillExecutionError as exc:
        raise _failure(notebook, output, exc) from None
    seconds = time.perf_counter() - start
    print(f"{label}{notebook.stem}: done in {seconds:.0f} s", flush=True)
    return seconds


def _failure(notebook: Path, output: Path, exc: PapermillExecutionError) -> NotebookFailed:
    """The one line of a failed cell; a training stopped by a signal keeps its exit status (130, 143)."""
    evalue = " ".join(str(exc.evalue).split())
    failed = NotebookFailed(
        f"{notebook.name}, cell {exc.exec_count}: {exc.ename}: {evalue} (the executed notebook, with the "
        f"traceback: {output})", user_mistake=exc.ename in USER_ERROR_NAMES, traceback=exc.traceback,
    )
    stopped = re.search(r"stopped by (SIG[A-Z]+)\b", evalue) if exc.ename == "Interrupted" else None
    if stopped:
        failed.exit_status = 128 + int(signal.Signals[stopped.group(1)])
    elif exc.ename == "KeyboardInterrupt":  # a second Ctrl-C, or one outside training
        failed.exit_status = 128 + int(signal.SIGINT)
    elif exc.ename == "WorkerFailed":  # a data-loader worker died: one line, exit status 1 as on the command line
        failed.exit_status = WorkerFailed.exit_status
    return failed


def _commit(root: Path) -> str | None:
    """The checkout's commit (None outside git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_digest(*, package: Path = PACKAGE, notebooks: Path = NOTEBOOKS) -> str:
    """sha256 of the code that shapes what a run computes: every ``.py`` file of the sub-packages of ``package``
    named in :data:`SHAPING_CODE` (path and content) and the code cells of the notebooks it names (their outputs
    and metadata, which JupyterLab rewrites on save, are left out)."""
    h = hashlib.sha256()
    for name in SHAPING_CODE:
        if name.endswith(".ipynb"):
            cells = json.loads((notebooks / name).read_text())["cells"]
            h.update(name.encode() + b"\0")
            for cell in cells:
                if cell["cell_type"] == "code":
                    h.update("".join(cell["source"]).encode() + b"\0")
            continue
        for path in sorted((package / name).rglob("*.py")):
            h.update(f"{name}/{path.relative_to(package / name).as_posix()}".encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _value(text: str) -> Any:
    """papermill's reading of a ``-p`` value: int, float, then YAML (lists, booleans), else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_values(pairs: list[list[str]] | list[tuple[str, str]]) -> dict[str, Any]:
    """``-p`` pairs as typed values: configuration keys checked as the configuration does, others as papermill
    reads them."""
    config_pairs = [(k, v) for k, v in pairs if k in CONFIG_KEYS]
    values = {k: _value(v) for k, v in pairs if k not in CONFIG_KEYS}
    values.update(parse_overrides(config_pairs))
    return values


def run_given(*, name: str, results: str, pairs: list[list[str]] | list[tuple[str, str]]) -> dict[str, Any]:
    """What ``python -m aiblib run NAME --results DIR -p ...`` gives its notebooks, and records in ``run.json``:
    the typed ``-p`` values, the run's name and ``results_root`` as typed. The sweep runner builds the same to
    tell a finished run."""
    return {**parse_values(pairs), "name": name, "results_root": results}


def run_inputs(*, params_file: str | Path | None, given: dict[str, Any], digest: str | None = None) -> dict[str, Any]:
    """What identifies a run's inputs: the parameter file's content, the ``-p`` values and the digest of the code
    that shapes training and evaluation (``digest``, or :func:`code_digest` now: a sweep computes it once)."""
    text = _parameter_file(params_file).read_bytes() if params_file is not None else b""
    return {"params_file": str(params_file) if params_file is not None else None,
            "params_sha256": hashlib.sha256(text).hexdigest(), "parameters": given,
            "code_digest": digest or code_digest()}


def run_record(*, params_file: str | Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """A run's ``run.json`` before its run: its inputs (:func:`run_inputs`) and, for the reader, the commit."""
    return {**run_inputs(params_file=params_file, given=given), "commit": _commit(project_root())}


def completed(marker: Path, record: dict[str, Any]) -> bool:
    """True when ``marker`` says a run with these inputs (parameter file, ``-p`` values, code digest) finished:
    a commit that changed only reports, tools, tests or prose does not rerun it; a changed digest does."""
    if not marker.is_file():
        return False
    try:
        saved = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    inputs = {k: saved[k] for k in record if k in saved and k not in NOT_INPUTS}
    return inputs == json.loads(json.dumps({k: v for k, v in record.items() if k not in NOT_INPUTS}))
