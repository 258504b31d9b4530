"""The attention browser as a user meets it: ``make lab``'s JupyterLab, a real (headless) Chromium,
notebook 03 opened from ``notebooks/`` and run with its default parameters.

Run by ``make test-browser`` (not by ``make test``: it needs Debian's ``chromium``). In a temporary
copy of the project (``AIBR_ROOT``) it trains the two runs 03 reads by default, ``dg-baseline`` and
``dg-aib``, at the size of ``params/smoke.yaml``; starts JupyterLab on 127.0.0.1 with the project's
``.jupyter`` configuration; opens 03, runs all cells, checks the static figures and the widget,
changes the map, the image, the opacity and the domain and checks that the picture changes each
time; saves the notebook and checks it is byte for byte the committed one. Screenshots go to a
temporary folder (``AIBR_SCREENSHOTS`` to choose it), printed at the end. Every process it starts
(JupyterLab, its kernels, Chromium, Playwright's driver) is ended before it returns.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

if not os.environ.get("AIBR_BROWSER_TEST"):
    pytest.skip("the browser test runs with `make test-browser` (it needs Debian's chromium)", allow_module_level=True)

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

from aiblib.config import load_config  # noqa: E402
from aiblib.data.synth import ensure_generated  # noqa: E402
from aiblib.paths import ROOT_VARIABLE  # noqa: E402
from aiblib.tools import prepare  # noqa: E402
from aiblib.training import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NOTEBOOK = "notebooks/03-visualize-attention.ipynb"
TOKEN = "aibr-browser-test"
# the smoke configuration, with images large enough to look at and 4 validation images per domain
RUN_SIZE = {"synth_size": [128, 256], "base_size": [128, 256], "synth_val": 4, "progress": False}


def _not_committed(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if not n.endswith((".ipynb", ".yaml", ".py")) and not (Path(folder) / n).is_dir()]


def _project(root: Path) -> Path:
    """A temporary project with the two runs 03 reads by default, trained the way 01 trains them."""
    for folder in ("notebooks", "params", ".jupyter"):  # the committed kinds of file only
        shutil.copytree(ROOT / folder, root / folder, ignore=_not_committed)
    for name, attention in (("dg-baseline", False), ("dg-aib", True)):
        cfg = load_config("params/smoke.yaml", {**RUN_SIZE, "name": name, "attention": attention})
        data = root / cfg.data_root
        ensure_generated(data, n_train=cfg.synth_train, n_val=cfg.synth_val, size=tuple(cfg.synth_size),
                         seed=cfg.synth_seed)
        if not (data / "aiblib_summary.csv").is_file():
            prepare(data, verbose=False)
        train(cfg)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


class Lab:
    """``make lab``'s JupyterLab (same configuration) on 127.0.0.1, in the temporary project."""

    def __init__(self, project: Path, log: Path) -> None:
        self.project, self.port = project, _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.runtime = project / ".lab" / "runtime"
        env = {**os.environ, ROOT_VARIABLE: str(project), "JUPYTER_CONFIG_PATH": str(project / ".jupyter"),
               "JUPYTER_CONFIG_DIR": str(project / ".lab" / "config"), "JUPYTER_RUNTIME_DIR": str(self.runtime),
               "JUPYTERLAB_SETTINGS_DIR": str(project / ".lab" / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(project / ".lab" / "workspaces")}
        command = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1",
                   f"--port={self.port}", f"--IdentityProvider.token={TOKEN}",
                   "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        news = project / ".lab" / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        news.parent.mkdir(parents=True)
        news.write_text(json.dumps({"fetchNews": "false"}))  # no "get notified about Jupyter news?" toast
        self.log = open(log, "w")
        self.process = subprocess.Popen(command, cwd=project, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 90
        while _get(f"{self.base}/api/status?token={TOKEN}") is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not start (log: {log})")
            time.sleep(0.5)

    def kernel_processes(self) -> list[int]:
        """Processes whose command line names this server's runtime folder (its kernels)."""
        pids = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and str(self.runtime) in (proc / "cmdline").read_bytes().decode(errors="ignore"):
                    pids.append(int(proc.name))
            except OSError:
                continue
        return pids

    def stop(self) -> list[int]:
        """Shut the server down (it ends its kernels); kill what is left; the pids that had to be killed."""
        try:
            request = urllib.request.Request(f"{self.base}/api/shutdown?token={TOKEN}", method="POST")
            urllib.request.urlopen(request, timeout=10).close()
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        left = self.kernel_processes()
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        self.log.close()
        return left


def _picture(page: Page) -> bytes:
    return page.locator(".aibr-picture").screenshot()


def _changes(page: Page, before: bytes, what: str, *, timeout: float = 60.0) -> bytes:
    """Wait until the browser's picture differs from ``before`` and has settled; the new picture."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(500)
        now = _picture(page)
        if now != before:
            page.wait_for_timeout(1000)
            return _picture(page)
    raise AssertionError(f"the picture did not change after {what}")


def _kernel_idle(page: Page, timeout: float = 120_000) -> None:
    """Wait for the notebook's kernel ("aiblib (.venv)", the kernel `make setup` installs) to be idle."""
    page.get_by_text("aiblib (.venv) | Idle").first.wait_for(timeout=timeout)


def _run_all(page: Page) -> None:
    """Run > Run All Cells, as a user does (accepting the proposed kernel if Jupyter asks for one)."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    dialog = page.locator(".jp-Dialog")
    try:
        dialog.wait_for(timeout=3000)
    except PlaywrightTimeout:
        return
    dialog.get_by_role("button", name="Select").click()


def test_notebook_03_in_jupyterlab_with_its_attention_browser(tmp_path_factory, monkeypatch):
    started = time.monotonic()
    project = tmp_path_factory.mktemp("project")
    monkeypatch.setenv(ROOT_VARIABLE, str(project))  # relative paths of the runs: the temporary project's
    _project(project)
    shots = Path(os.environ.get("AIBR_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    committed = (ROOT / NOTEBOOK).read_bytes()
    lab = Lab(project, shots / "jupyterlab.log")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                try:
                    _drive(page, lab, shots)
                except Exception:
                    page.screenshot(path=shots / "failure.png")
                    print(f"\nfailure screenshot: {shots / 'failure.png'}")
                    raise
            finally:
                browser.close()
    finally:
        left = lab.stop()
    assert not left, f"kernels still running after the server stopped: {left}"
    assert (project / NOTEBOOK).read_bytes() == committed, "saving the notebook changed it (git would be dirty)"
    stray = [p for p in (project / "notebooks").iterdir() if p.suffix != ".ipynb" and p.name != ".ipynb_checkpoints"]
    assert not stray, f"files left under notebooks/ (outputs belong in results/): {stray}"  # checkpoints: git-ignored
    print(f"\nbrowser test: {time.monotonic() - started:.0f} s; screenshots in {shots}")


def _drive(page: Page, lab: Lab, shots: Path) -> None:
    page.goto(f"{lab.base}/lab/tree/{NOTEBOOK}?token={TOKEN}")
    page.locator(".jp-NotebookPanel").first.wait_for(timeout=60_000)
    _kernel_idle(page)
    _run_all(page)
    page.locator("img.aibr-picture").wait_for(timeout=240_000)
    _kernel_idle(page)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert "Traceback" not in " ".join(errors.all_inner_texts()), "a cell failed"

    static = page.locator(".jp-OutputArea-output img").first
    static.scroll_into_view_if_needed()
    static.screenshot(path=shots / "static-figure.png")
    assert page.locator(".jp-OutputArea-output img").count() >= 8 + 1  # 2 figures x 2 images x 2 domains, the browser

    widget = page.locator(".widget-vbox").filter(has=page.locator(".aibr-picture")).first
    widget.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    assert "entropy" in page.locator(".aibr-caption").inner_text()
    widget.screenshot(path=shots / "widget-entropy.png")
    before = _picture(page)

    page.locator(".aibr-map button", has_text="mutual information").click()
    before = _changes(page, before, "choosing the map 'mutual information'")
    assert "mutual information" in page.locator(".aibr-caption").inner_text()
    widget.screenshot(path=shots / "widget-mi.png")

    names = page.locator(".aibr-image select option").all_inner_texts()
    assert len(names) == 4 and all(n.endswith(".png") for n in names)  # every val image, by file name
    page.locator(".aibr-image select").select_option(index=2)
    before = _changes(page, before, "choosing the third image")
    assert names[2] in page.locator(".aibr-caption").inner_text()

    page.locator(".aibr-map button", has_text="attention mu").click()
    before = _changes(page, before, "choosing the map 'attention mu'")
    handle = page.locator(".aibr-opacity .noUi-handle")
    handle.focus()
    for _ in range(8):
        handle.press("ArrowRight")
    before = _changes(page, before, "raising the opacity")
    widget.screenshot(path=shots / "widget-mu-opacity.png")

    page.locator(".aibr-domain select").select_option(index=1)
    before = _changes(page, before, "choosing the second domain")
    assert "bdd100k:val" in page.locator(".aibr-caption").inner_text()
    widget.screenshot(path=shots / "widget-domain.png")
    page.screenshot(path=shots / "jupyterlab.png")

    page.keyboard.press("Control+s")
    page.wait_for_timeout(3000)
