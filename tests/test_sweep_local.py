"""The local launcher for real (submitit's LocalExecutor), with a fake program in place of ``python -m aiblib``:
``--jobs 2`` runs the same runs with the same arguments as ``--jobs 1``, at most two at once, each pinned to its
own half of the cores with ``OMP_NUM_THREADS`` = their count; ``--jobs 1`` leaves the run's environment as it is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

import aiblib.sweeps.runner as runner
from aiblib.sweeps import LocalLauncher, Sweep, local_slots, read_record, record_path

FAKE = """\
import json, os, sys, time
from pathlib import Path
args = sys.argv[1:]
name, results = args[1], Path(args[args.index("--results") + 1])
start = time.time()
time.sleep(1.5)
seen = {"name": name, "args": args, "cores": sorted(os.sched_getaffinity(0)), "omp": os.environ.get("OMP_NUM_THREADS"),
        "launcher": os.environ.get("AIBR_JOB_LAUNCHER"), "job": os.environ.get("AIBR_JOB_ID"), "start": start,
        "end": time.time()}
with open(os.environ["FAKE_SEEN"], "a") as f:
    f.write(json.dumps(seen) + "\\n")
print(f"{name}: trained and scored", flush=True)
(results / name).mkdir(parents=True, exist_ok=True)
(results / name / "fake-done").write_text("")
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The fake program, a done check that reads its marker, and a report that only notes it was asked for."""
    (tmp_path / "fake.py").write_text(FAKE)
    monkeypatch.setenv("FAKE_SEEN", str(tmp_path / "seen.jsonl"))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runner, "run_done",
                        lambda spec, results, digest: (Path(results) / spec.name / "fake-done").exists())
    reports = []
    monkeypatch.setattr(runner, "write_report", lambda results, label="": reports.append(results))
    return types.SimpleNamespace(program=(sys.executable, str(tmp_path / "fake.py")), reports=reports,
                                 seen=tmp_path / "seen.jsonl")


def _sweep(tmp_path, name: str) -> Sweep:
    return Sweep(params_file="params/synthetic-dg.yaml", protocol="dg", betas=("1e-4",), seeds=("0", "1"),
                 results=str(tmp_path / name / "results"), runs=str(tmp_path / name / "runs"))


class _Recording(LocalLauncher):
    """Notes the jobs a sweep submits with --jobs 1 and marks each run done, running nothing."""

    def submit(self, job):
        self.jobs = [*getattr(self, "jobs", []), job]
        name, results = job.command[3], job.command[job.command.index("--results") + 1]
        (Path(results) / name).mkdir(parents=True)
        (Path(results) / name / "fake-done").write_text("")
        return types.SimpleNamespace(done=lambda: True, job_id="0", paths=types.SimpleNamespace(stdout="none"))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two runs at once need two cores")
def test_two_jobs_at_once_run_the_same_runs_on_disjoint_cores(tmp_path, fake, capsys):
    one = _sweep(tmp_path, "one")
    recording = _Recording(one.runs, slots=local_slots(1, gpus_per_run=0))
    assert runner.run_sweep(one, recording, program=fake.program, poll_s=0.1) == 0
    assert all(job.cores == () and dict(job.environment).keys() == {"CUDA_VISIBLE_DEVICES"} for job in recording.jobs)

    two = _sweep(tmp_path, "two")
    slots = local_slots(2, gpus_per_run=0)
    assert runner.run_sweep(two, LocalLauncher(two.runs, slots=slots), program=fake.program, poll_s=0.1) == 0
    out = capsys.readouterr().out
    seen = [json.loads(line) for line in fake.seen.read_text().splitlines()]

    def words(args, results):  # a run's arguments, its results folder named alike in both sweeps
        return [a.replace(results, "RESULTS").replace(results.replace("results", "runs"), "RUNS") for a in args]

    assert sorted(words(s["args"], two.results) for s in seen) == \
        sorted(words(list(job.command[2:]), one.results) for job in recording.jobs)
    assert len(seen) == 4 and fake.reports == [one.results, two.results]
    shares = {slot.cores for slot in slots}
    assert all(tuple(s["cores"]) in shares and s["omp"] == str(len(s["cores"])) for s in seen), seen
    assert {tuple(s["cores"]) for s in seen} == shares and not set.intersection(*map(set, shares))
    for s in seen:  # never more than two at once, and two at once never on the same cores
        during = [o for o in seen if o["start"] < s["end"] and s["start"] < o["end"]]
        assert len(during) <= 2 and len({tuple(o["cores"]) for o in during}) == len(during), during
    for s in seen:  # each run's job record names the job the run saw, and its log holds the run's output
        record = read_record(record_path(two.runs, s["name"]))
        assert s["launcher"] == "local" and record["launcher"] == "local" and record["job_id"] == s["job"]
        assert f"{s['name']}: trained and scored" in Path(record["log"]).read_text()
        assert f"[{s['name']}] {s['name']}: trained and scored" in out  # shown as it ran, named
    assert "submitit INFO" not in out


STOPPABLE = """\
import os, signal, sys, time
from pathlib import Path
name, stopping = sys.argv[2], []

def stop(signum, frame):  # as training does: the first signal finishes the step and writes last.pth, a repeat is noted
    if not stopping:
        stopping.append(signal.Signals(signum).name)
        print(f"{name}: training stopped by {stopping[0]}, last.pth written", flush=True)
        with open(os.environ["FAKE_STOPPED"], "a") as f:
            f.write(f"{name} {stopping[0]}\\n")
        time.sleep(1.0)
        sys.exit(128 + signum)

signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
with open(os.environ["FAKE_STARTED"], "a") as f:
    f.write(f"{name} {os.getpid()}\\n")
print(f"{name}: training", flush=True)
time.sleep(120)
"""

DRIVER = """\
import os, signal, sys
import aiblib.sweeps.runner as runner
from aiblib.cli.common import command
from aiblib.sweeps import LocalLauncher, Sweep, local_slots
root, fake = sys.argv[1], sys.argv[2]
runner.run_done = lambda spec, results, digest: False
sweep = Sweep(params_file="params/synthetic-dg.yaml", protocol="dg", betas=("1e-4",), seeds=("0", "1"),
              results=root + "/results", runs=root + "/runs")
launcher = LocalLauncher(sweep.runs, slots=local_slots(1, gpus_per_run=0))
if sys.argv[3:] == ["ctrl-c-at-submit"]:  # Ctrl-C the instant the first job is submitted, before it starts its run
    submit = launcher.submit
    launcher.submit = lambda job: (submit(job), os.kill(os.getpid(), signal.SIGINT))[0]
sys.exit(command(lambda argv: runner.run_sweep(sweep, launcher, program=(sys.executable, fake), poll_s=0.1))([]))
"""


def _wait_for(path: Path, *, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path} stayed empty for {seconds} s")


def _ended(pid: int) -> bool:
    """Whether process ``pid`` has ended: gone, or a zombie its new parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("how", ["ctrl-c", "signal to the runner"])
def test_an_interrupted_sweep_stops_its_run_starts_no_other_and_names_what_was_left(tmp_path, how):
    """Ctrl-C in a terminal signals every process of the foreground group (the runner, submitit's processes, the
    run); SIGINT to the runner alone reaches only it. Either way the run stops cleanly before the runner ends, no
    further run starts, and the runner's last line names the stopped run and the runs not started."""
    (tmp_path / "fake.py").write_text(STOPPABLE)
    (tmp_path / "driver.py").write_text(DRIVER)
    started, stopped = tmp_path / "started", tmp_path / "stopped"
    env = {**os.environ, "FAKE_STARTED": str(started), "FAKE_STOPPED": str(stopped)}
    runner_process = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(tmp_path), str(tmp_path / "fake.py")],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      start_new_session=True)  # its own process group, as a terminal's foreground job
    try:
        name, pid = _wait_for(started, seconds=60).split()
        if how == "ctrl-c":
            os.killpg(runner_process.pid, signal.SIGINT)
        else:
            os.kill(runner_process.pid, signal.SIGINT)
        out, err = runner_process.communicate(timeout=60)
    finally:
        if runner_process.poll() is None:
            os.killpg(runner_process.pid, signal.SIGKILL)
    assert runner_process.returncode == 130, (out, err)
    assert name == "dg-baseline-s0" and len(started.read_text().splitlines()) == 1  # no other run started
    assert stopped.read_text().split() == [name, "SIGINT" if how == "ctrl-c" else "SIGTERM"]
    assert f"{name}: training stopped by" in out  # its log kept showing until it had stopped
    assert _ended(int(pid))
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: sweep interrupted (Ctrl-C): dg-baseline-s0 stopped; 3 run(s) not started "
                           "(dg-aib-b1e-4-s0, dg-baseline-s1, dg-aib-b1e-4-s1)"), err
    assert "Traceback" not in err


def test_a_sweep_interrupted_before_its_job_has_started_the_run_stops_the_run_once_started(tmp_path):
    """The job notes its run's pid as it starts it: a run not started yet when the runner is told to stop is
    signalled as soon as it is, and the runner ends at once, not after waiting out the run's time to stop."""
    (tmp_path / "fake.py").write_text(STOPPABLE)
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {**os.environ, "FAKE_STARTED": str(tmp_path / "started"), "FAKE_STOPPED": str(tmp_path / "stopped")}
    start = time.monotonic()
    done = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(tmp_path), str(tmp_path / "fake.py"),
                           "ctrl-c-at-submit"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, (done.stdout, done.stderr)
    assert time.monotonic() - start < 60  # LocalLauncher's default signal delay, the longest the runner waits, is 90 s
    assert done.stderr.strip().splitlines()[-1].startswith(
        "error: sweep interrupted (Ctrl-C): dg-baseline-s0 stopped; 3 run(s) not started"), done.stderr
    record = read_record(record_path(str(tmp_path / "runs"), "dg-baseline-s0"))
    assert isinstance(record["pid"], int) and _ended(record["pid"])
    started = tmp_path / "started"
    assert not started.exists() or started.read_text().split()[0] == "dg-baseline-s0"  # no other run started
