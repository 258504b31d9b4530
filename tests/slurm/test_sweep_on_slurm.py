"""The sweep runner against a real Slurm: a single-node Slurm on this machine, started and stopped by the test.

Run by ``make test-slurm`` (not by ``make test``: it installs Debian's ``slurm-wlm`` and ``munge`` when they are
missing and runs Slurm's daemons as root). The session fixture :func:`slurm` configures and starts ``slurmctld`` and
``slurmd`` (and ``munged`` when none answers) in a temporary folder (:mod:`single_node`), and at the end stops every
daemon it started and checks that they are gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

if not os.environ.get("AIBR_SLURM_TEST"):
    pytest.skip("the Slurm test runs with `make test-slurm` (it installs and starts a single-node Slurm)",
                allow_module_level=True)

import single_node  # noqa: E402  (tests/slurm/single_node.py)

REPO = Path(__file__).resolve().parents[2]


def _until(condition, timeout: float, what: str, poll: float = 0.2):
    """``condition()``'s first truthy value, polled; a failed test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout:.0f} s", pytrace=False)
        time.sleep(poll)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running single-node Slurm; ``SLURM_CONF`` names its configuration for this process and its children."""
    root = single_node.as_root()
    if single_node.missing():
        if root is None:
            pytest.fail(f"make test-slurm needs Slurm and munge ({', '.join(single_node.missing())} missing): "
                        f"{single_node.INSTALL_HINT}", pytrace=False)
        single_node.install(root)
    if root is None:
        pytest.fail("make test-slurm runs slurmctld and slurmd as root: run it as root or with passwordless sudo",
                    pytrace=False)
    started = time.perf_counter()
    cluster = single_node.start(tmp_path_factory.mktemp("slurm"), root)
    print(f"\nSlurm up in {time.perf_counter() - started:.1f} s: {cluster.conf}, started {cluster.started}")
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before
        left = cluster.stop()
        if left:
            single_node.kill_left(cluster)
        assert not left, f"still running after Slurm was stopped: {left}"
        print(f"Slurm stopped: {', '.join(cluster.started)} gone")


def test_a_job_sees_its_id_and_runs_again_after_a_requeue(slurm, tmp_path):
    """The harness itself: a job runs with its id, ``scontrol requeue`` ends it and holds it (BeginTime), and
    ``scontrol update StartTime=now`` starts it again with the same id and ``SLURM_RESTART_COUNT`` 1."""
    out = tmp_path / "job.out"
    script = 'echo "job $SLURM_JOB_ID restart ${SLURM_RESTART_COUNT:-0}"; sleep 300'
    job = slurm.run("sbatch", "--parsable", "--cpus-per-task=1", f"--output={out}", "--open-mode=append",
                    "--wrap", script).strip()
    _until(lambda: slurm.job(job).get("JobState") == "RUNNING" and out.is_file() and out.read_text(), 60,
           f"job {job} did not start")
    slurm.run("scontrol", "requeue", job)
    held = _until(lambda: (info := slurm.job(job)).get("JobState") == "PENDING" and info, 60,
                  f"job {job} was not pending after scontrol requeue")
    assert held["Reason"] == "BeginTime", held
    slurm.run("scontrol", "update", f"JobId={job}", "StartTime=now")
    _until(lambda: "restart 1" in out.read_text(), 60, f"job {job} did not run again after its release")
    assert out.read_text().splitlines()[0] == f"job {job} restart 0", out.read_text()
    assert f"job {job} restart 1" in out.read_text().splitlines(), out.read_text()
    assert slurm.job(job)["Restarts"] == "1"
    slurm.run("scancel", job)
    _until(lambda: job not in slurm.queue(), 60, f"job {job} did not end after scancel")


# ---------------------------------------------------------------------------------------------------------------
# The sweep runner end to end: a 2-β × 2-seed grid through sbatch, one run requeued mid-training.

BETAS = ("1e-3", "1e-2")
SEEDS = ("0", "1")
# params/smoke.yaml's toy sizes, with iterations enough (about 0.2 s each here) for a run to be caught training,
# a checkpoint every 20 (each is about 90 MB: 12 runs keeping one every 5 filled the disk), bit-exact on one thread
# so that both launchers and a resumed run compute the same numbers; the requeued run resumes from the last.pth its
# SIGTERM wrote, at the iteration it stopped after
RUN = {"iterations": 60, "checkpoint_interval": 20, "log_interval": 1, "deterministic_algorithms": True,
       "threads": 1, "progress": False}
REQUEUE_AFTER = 12  # the requeued run has logged this iteration (before its first periodic checkpoint) and is short of the end
# each sweep's limit: about 4 min on an idle 2-core CPU (6 runs, 2 at once, 60-90 s each); a run starved by other
# work on the machine (at nice 19 here) took 10 min
SWEEP_TIMEOUT = 1800


def _params(folder: Path) -> Path:
    """The sweep's parameter file: params/smoke.yaml with :data:`RUN`, its synthetic data generated in ``folder``."""
    from aiblib.config import load_config
    from aiblib.data.synth import ensure_generated
    from aiblib.tools import prepare

    values = {**yaml.safe_load((REPO / "params" / "smoke.yaml").read_text()), **RUN,
              "data_root": str(folder / "data")}
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    cfg = load_config(path, {})
    ensure_generated(Path(cfg.data_root), n_train=cfg.synth_train, n_val=cfg.synth_val,
                     size=tuple(cfg.synth_size), seed=cfg.synth_seed)
    prepare(Path(cfg.data_root), verbose=False)
    return path


def _sweep(params: Path, results: Path, runs: Path, *launcher: str) -> list[str]:
    return [sys.executable, "-m", "aiblib", "sweep", "-f", str(params), "--betas", *BETAS, "--seeds", *SEEDS,
            "--results", str(results), "--runs", str(runs), *launcher]


def _run(cmd: list[str], log: Path, timeout: float) -> str:
    """Run ``cmd`` to its end (its output in ``log``); its output, or a failed test with the end of it."""
    started = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, timeout=timeout)
    text = log.read_text()
    print(f"{' '.join(cmd[3:6])} … {' '.join(cmd[-6:])}: exit {done.returncode} in {time.perf_counter() - started:.0f} s")
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}; the end of its output:\n{text[-4000:]}"
    return text


def _grid(results: Path) -> dict[tuple[bool, float, int], str]:
    """The finished runs under ``results`` by (attention, β, seed): run names, from each run's saved config."""
    grid = {}
    for marker in sorted(results.glob("*/run.json")):
        cfg = yaml.safe_load((marker.parent / "config.yaml").read_text())
        grid[(bool(cfg["attention"]), float(cfg["beta"]) if cfg["attention"] else 0.0, int(cfg["seed"]))] = \
            marker.parent.name
    return grid


def _expected_grid() -> set[tuple[bool, float, int]]:
    return ({(False, 0.0, int(s)) for s in SEEDS}
            | {(True, float(b), int(s)) for b in BETAS for s in SEEDS})


def _log(run_dir: Path) -> list[dict]:
    path = run_dir / "log.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            continue
    return records


def _events(run_dir: Path, name: str) -> list[dict]:
    return [r for r in _log(run_dir) if r.get("kind") == "event" and r.get("event") == name]


def _last_iteration(run_dir: Path) -> int:
    return max((r["iteration"] for r in _log(run_dir) if r.get("kind") == "train"), default=0)


def _recorded_job(run_json: Path) -> dict:
    """The job a run records in its ``run.json`` (``job``: launcher, id, restarts)."""
    record = json.loads(run_json.read_text())
    assert isinstance(record.get("job"), dict), f"{run_json} records no job: {record}"
    return record["job"]


def _job_running(run: str) -> str | None:
    """The Slurm job id in the environment of the ``python -m aiblib run RUN`` process now running, if any."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"aiblib" not in argv or b"run" not in argv or run.encode() not in argv:
                continue
            env = dict(item.split(b"=", 1) for item in (proc / "environ").read_bytes().split(b"\0") if b"=" in item)
        except OSError:
            continue
        if b"SLURM_JOB_ID" in env:
            return env[b"SLURM_JOB_ID"].decode()
    return None


def _catch_one_training(runs: Path, sweep: subprocess.Popen) -> tuple[str, str, int]:
    """(run, job id, iteration) of the first run seen training past :data:`REQUEUE_AFTER` inside a Slurm job."""
    def training():
        assert sweep.poll() is None, "the sweep ended before any run could be requeued"
        for run_dir in sorted(p for p in runs.glob("*") if p.is_dir()):
            iteration = _last_iteration(run_dir)
            if REQUEUE_AFTER <= iteration < RUN["iterations"] - 20 and (job := _job_running(run_dir.name)):
                return run_dir.name, job, iteration
        return None
    return _until(training, SWEEP_TIMEOUT, f"no run was seen training past iteration {REQUEUE_AFTER}", poll=0.1)


def test_a_sweep_through_slurm_survives_a_requeue_and_equals_the_local_launcher(slurm, tmp_path):
    params = _params(tmp_path)
    results, runs = tmp_path / "results-slurm", tmp_path / "runs-slurm"
    slurm_flags = ["--launcher", "slurm", "--partition", single_node.PARTITION, "--cpus", "1", "--mem", "2G",
                   "--time", "20"]
    started = time.perf_counter()
    log = tmp_path / "sweep-slurm.log"
    with open(log, "w") as out:
        sweep = subprocess.Popen(_sweep(params, results, runs, *slurm_flags), stdout=out, stderr=subprocess.STDOUT,
                                 cwd=REPO)
    try:
        # one run caught mid-training inside its job: requeued (Slurm ends it and holds it), then released
        run, job, iteration = _catch_one_training(runs, sweep)
        slurm.run("scontrol", "requeue", job)
        _until(lambda: slurm.job(job).get("JobState") == "PENDING", 120, f"job {job} was not pending after requeue")
        print(f"\n{run}: job {job} requeued at iteration {iteration} ({time.perf_counter() - started:.0f} s), "
              f"then released")
        slurm.run("scontrol", "update", f"JobId={job}", "StartTime=now")
        sweep.wait(timeout=SWEEP_TIMEOUT)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    text = log.read_text()
    print(f"slurm sweep: exit {sweep.returncode} in {time.perf_counter() - started:.0f} s")
    assert sweep.returncode == 0, f"the Slurm sweep exited {sweep.returncode}; the end of its output:\n{text[-4000:]}"

    # every run of the grid finished, each inside a Slurm job of its own that Slurm ran to completion
    grid = _grid(results)
    assert set(grid) == _expected_grid(), f"finished runs {sorted(grid)}; the end of the output:\n{text[-4000:]}"
    recorded = {name: _recorded_job(results / name / "run.json") for name in grid.values()}
    assert {r["launcher"] for r in recorded.values()} == {"slurm"}, recorded
    jobs = {name: str(r["id"]) for name, r in recorded.items()}
    assert len(set(jobs.values())) == len(jobs), f"runs sharing a job: {jobs}"
    for name, job_id in jobs.items():  # a job Slurm ran to its end, with this run's name
        info = slurm.job(job_id)
        assert info.get("JobState") == "COMPLETED" and info.get("JobName") == name, (name, job_id, info)
    assert jobs[run] == job and recorded[run]["restarts"] == 1, recorded[run]
    assert all(r["restarts"] == 0 for name, r in recorded.items() if name != run), recorded

    # the requeued run: Slurm restarted its job once; it resumed from a checkpoint, not from iteration 0
    assert slurm.job(job)["Restarts"] == "1", slurm.job(job)
    run_dir = runs / run
    interrupted, resumes = _events(run_dir, "interrupted"), _events(run_dir, "resume")
    assert [e["signal"] for e in interrupted] == ["SIGTERM"], _log(run_dir)
    assert len(resumes) == 1 and resumes[0]["iteration"] == interrupted[0]["iteration"] >= iteration, resumes
    assert len(_events(run_dir, "requeue")) >= 1, [e for e in _log(run_dir) if e.get("kind") == "event"]
    assert len(_events(run_dir, "start")) == 1 and _events(run_dir, "end"), _events(run_dir, "start")
    for other in set(grid.values()) - {run}:
        assert not _events(runs / other, "resume"), f"{other} resumed, though only {run} was requeued"

    # --status: done, for every run
    status = _run(_sweep(params, results, runs, *slurm_flags, "--status"), tmp_path / "status.log", 120)
    print(status)
    for name in grid.values():
        lines = [line for line in status.splitlines() if name in line.split()]
        assert len(lines) == 1 and "done" in lines[0].split(), f"{name}: {lines}\n{status}"

    # the same grid on this machine, two runs at once: the same comparison, number for number
    local_results, local_runs = tmp_path / "results-local", tmp_path / "runs-local"
    _run(_sweep(params, local_results, local_runs, "--launcher", "local", "--jobs", "2"), tmp_path / "local.log",
         SWEEP_TIMEOUT)
    assert set(_grid(local_results)) == _expected_grid()
    on_slurm = pd.read_csv(results / "comparison.csv")
    local = pd.read_csv(local_results / "comparison.csv")
    assert len(on_slurm) == len(BETAS) * 2  # one row per β and scored domain (the source's val, BDD100K-like val)
    # exactly: one thread per run, deterministic algorithms, and a resume that continues bit for bit
    pd.testing.assert_frame_equal(on_slurm, local, check_exact=True)
