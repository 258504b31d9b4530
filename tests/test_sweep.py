"""The sweep runner without running a training: the grid and its names, a run.json of the Makefile's old loop
recognised as done, --status for every state (a fake squeue on PATH), the requeue rule of a job, the Slurm
options, and the one-line errors of python -m aiblib sweep."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch

import aiblib.sweeps.runner as runner
from aiblib.cli import sweep as sweep_cli
from aiblib.errors import Interrupted
from aiblib.notebooks import code_digest, run_given, run_inputs, run_record
from aiblib.sweeps import (
    RunFailed,
    RunJob,
    RunSpec,
    Sweep,
    expand,
    file_value,
    job_in_environment,
    local_slots,
    new_record,
    note_requeue,
    parse_time,
    read_record,
    record_path,
    run_arguments,
    slurm_options,
    write_record,
)
from aiblib.sweeps.launchers import _sbatch_options
from aiblib.sweeps.status import run_done, run_states

PARAMS = "params/synthetic-dg.yaml"


def _sweep(tmp_path, **changes) -> Sweep:
    values = dict(params_file=PARAMS, protocol="dg", betas=("0", "1e-4"), seeds=("0", "2"),
                  results=str(tmp_path / "results"), runs=str(tmp_path / "runs"))
    return Sweep(**{**values, **changes})


def test_the_grid_is_per_seed_the_baseline_then_each_beta_named_as_typed(tmp_path):
    sweep = _sweep(tmp_path, betas=("0", "1e-4", "1.0e-3"), extra=(("iterations", "2"),))
    assert [s.name for s in expand(sweep)] == [
        "dg-baseline-s0", "dg-aib-b0-s0", "dg-aib-b1e-4-s0", "dg-aib-b1.0e-3-s0",
        "dg-baseline-s2", "dg-aib-b0-s2", "dg-aib-b1e-4-s2", "dg-aib-b1.0e-3-s2"]
    baseline, aib = expand(sweep)[4], expand(sweep)[7]
    runs = str(tmp_path / "runs")
    assert baseline.pairs == (("attention", "False"), ("seed", "2"), ("runs_root", runs), ("iterations", "2"))
    assert aib.pairs == (("attention", "True"), ("beta", "1.0e-3"), ("seed", "2"), ("runs_root", runs),
                         ("iterations", "2"))
    assert run_arguments(aib, results="results/x", step="15/17") == [
        "run", "dg-aib-b1.0e-3-s2", "-f", PARAMS, "--results", "results/x", "-p", "attention", "True", "-p", "beta",
        "1.0e-3", "-p", "seed", "2", "-p", "runs_root", runs, "-p", "iterations", "2", "--skip-done",
        "--step", "15/17"]


def test_paper_runs_give_the_baseline_its_own_file_and_several_gpus_start_torchrun(tmp_path):
    specs = expand(_sweep(tmp_path, params_file="params/paper/dg-r50.yaml", betas=("1.0e-4",), seeds=("0",),
                          baseline_params="params/paper/dg-r50-baseline.yaml", gpus=4))
    assert [(s.name, s.params_file) for s in specs] == [("dg-baseline-s0", "params/paper/dg-r50-baseline.yaml"),
                                                        ("dg-aib-b1.0e-4-s0", "params/paper/dg-r50.yaml")]
    assert all(("gpus", "4") in s.pairs for s in specs)
    assert not any(p[0] == "gpus" for s in expand(_sweep(tmp_path)) for p in s.pairs)


def test_the_parameter_files_beta_is_read_as_typed(tmp_path):
    assert file_value("params/camvid-dusk.yaml", "beta") == "1.0e-3"
    assert file_value("params/camvid-dusk.yaml", "protocol") == "camvid-dusk"
    (tmp_path / "p.yaml").write_text("seed: 3  # a comment\nbeta_x: 9\n")
    assert file_value(str(tmp_path / "p.yaml"), "seed") == "3" and file_value(str(tmp_path / "p.yaml"), "beta") is None


def _old_loop_record(results: str, runs: str, name: str, words: list[str]) -> dict:
    """The run.json ``make sweep``'s old shell loop left: ``aiblib run NAME -f PARAMS --results SWEEP_RESULTS``
    with ``-p attention True -p beta B -p seed S -p runs_root SWEEP_RUNS SWEEP_EXTRA`` (words), whose values
    aiblib run typed as the configuration types them."""
    typed = {"attention": words[1] == "True", "beta": float(words[3]), "seed": int(words[5]), "runs_root": runs,
             "iterations": int(words[9])}
    given = {**typed, "name": name, "results_root": results}
    return {**run_record(params_file=PARAMS, given=given), "seconds": 12.5, "training": []}


def test_a_run_json_written_by_the_makefiles_old_loop_is_done_for_the_runner(tmp_path, capsys):
    results, runs = "results/sweep-dg", str(tmp_path / "runs")
    sweep = _sweep(tmp_path, results=str(tmp_path / "results"), runs=runs, betas=("1e-4",), seeds=("0",),
                   extra=(("iterations", "2"),))
    name = "dg-aib-b1e-4-s0"
    words = ["attention", "True", "beta", "1e-4", "seed", "0", "runs_root", runs, "iterations", "2"]
    marker = Path(sweep.results) / name / "run.json"
    marker.parent.mkdir(parents=True)
    # the old loop passed --results as typed; the record keeps it as typed, so the sweep's --results must match
    marker.write_text(json.dumps(_old_loop_record(sweep.results, runs, name, words)))
    spec = next(s for s in expand(sweep) if s.name == name)
    assert run_done(spec, results=sweep.results, digest=code_digest())
    assert not run_done(RunSpec(name, PARAMS, (*spec.pairs[:-1], ("iterations", "3"))), results=sweep.results,
                        digest=code_digest())
    assert not run_done(next(s for s in expand(sweep) if s.name == "dg-baseline-s0"), results=sweep.results,
                        digest=code_digest())
    assert sweep_cli.main(["-f", PARAMS, "--betas", "1e-4", "--seeds", "0", "--results", sweep.results, "--runs", runs,
                           "-p", "iterations", "2", "--status"]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert lines == {"dg-baseline-s0": "not started", name: "done"}


def _fake_squeue(tmp_path, monkeypatch, output: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/squeue-args\nprintf '{output}'\n")
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_status_says_done_running_queued_failed_and_not_started(tmp_path, monkeypatch):
    sweep = _sweep(tmp_path, betas=("0", "1e-4"), seeds=("0", "1"))
    specs = expand(sweep)  # 6 runs
    _fake_squeue(tmp_path, monkeypatch, "101 RUNNING\\n102 PENDING\\n")
    log = tmp_path / "103_0_log.out"
    log.write_text("[3/13] dg-aib-b1e-4-s0 01-train: running\nerror: training stopped by SIGTERM after iteration 7\n"
                   "submitit ERROR (2026-12-06 10:00:00,000) - Submitted job triggered an exception\n")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "submitit"])
    try:
        for spec, launcher, job_id in ((specs[0], "slurm", "101"), (specs[1], "slurm", "102"),
                                       (specs[2], "slurm", "103"), (specs[3], "local", str(alive.pid))):
            write_record(record_path(sweep.runs, spec.name),
                         new_record(launcher=launcher, job_id=job_id, log=log, submitted=time.time()))
        monkeypatch.setattr("aiblib.sweeps.status.run_done", lambda spec, results, digest: spec.name == specs[4].name)
        lines = [state.line() for state in run_states(specs, results=sweep.results, runs=sweep.runs)]
    finally:
        alive.kill()
        alive.wait()
    assert lines == [
        f"{specs[0].name}  running (job 101)", f"{specs[1].name}  queued (job 102)",
        f"{specs[2].name}  failed (job 103): error: training stopped by SIGTERM after iteration 7",
        f"{specs[3].name}  running (job {alive.pid})", f"{specs[4].name}  done", f"{specs[5].name}  not started"]
    assert (tmp_path / "squeue-args").read_text().split() == ["-h", "-j", "101,102,103", "-o", "%i", "%T"]
    state = run_states([specs[3]], results=sweep.results, runs=sweep.runs)[0]  # the local job has ended
    assert state.state == "failed" and state.job_id == str(alive.pid)


def _checkpoint(run_dir: Path, iteration: int) -> None:
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    torch.save({"iteration": iteration}, run_dir / "checkpoints" / "last.pth")


def _job(tmp_path, command=("true",)) -> RunJob:
    return RunJob(name="dg-aib-b0-s0", command=tuple(command), run_dir=str(tmp_path / "run"),
                  record=str(tmp_path / "jobs" / "dg-aib-b0-s0.json"), launcher="slurm", signal_delay_s=20)


def _events(run_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()) if r.get("event") == "requeue"]


def test_a_requeue_is_noted_and_a_run_stopped_twice_at_the_same_checkpoint_is_not_requeued_again(tmp_path):
    job = _job(tmp_path)
    write_record(Path(job.record), new_record(launcher="slurm", job_id="7", log=tmp_path / "x", submitted=0))
    _checkpoint(Path(job.run_dir), 5)
    assert note_requeue(job, job_id="7", restart=1, reason="test") is None
    _checkpoint(Path(job.run_dir), 9)
    assert note_requeue(job, job_id="7", restart=2, reason="test") is None
    failure = note_requeue(job, job_id="7", restart=3, reason="test")
    assert failure and "dg-aib-b0-s0" in failure and "iteration 9" in failure and "not requeued again" in failure
    requeues = read_record(Path(job.record))["requeues"]
    assert [(r["count"], r["restart"], r["iteration"]) for r in requeues] == [(1, 1, 5), (2, 2, 9)]
    assert [(e["count"], e["job_id"], e["iteration"]) for e in _events(Path(job.run_dir))] == [(1, "7", 5), (2, "7", 9)]


def test_the_preemption_signal_stops_the_run_with_sigterm_and_requeues_it_once_per_progress(tmp_path, monkeypatch):
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    job = _job(tmp_path)
    _checkpoint(Path(job.run_dir), 3)
    stopped = tmp_path / "stopped"
    script = (f"import signal, sys, time\n"
              f"def stop(*_): open({str(stopped)!r}, 'w').write('SIGTERM'); sys.exit(143)\n"
              f"signal.signal(signal.SIGTERM, stop)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    job._process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    job._process.stdout.readline()
    requeued = job.checkpoint()
    assert stopped.read_text() == "SIGTERM" and job._process.returncode == 143
    assert requeued is not None and requeued.function.name == job.name
    assert "_process" not in pickle.loads(pickle.dumps(requeued.function)).__dict__  # what submitit saves
    assert read_record(Path(job.record))["requeues"][0]["job_id"] == "4242"
    assert job.checkpoint() is None  # stopped again at iteration 3: fails the same way twice


SIGNALLED = """\
import os, signal, sys, threading
os.environ.update(SUBMITIT_EXECUTOR="local", SUBMITIT_LOCAL_JOB_ID="99")
from aiblib.sweeps import RunJob
run = "import signal, sys, time\\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(143))\\ntime.sleep(60)"
job = RunJob(name="r", command=(sys.executable, "-c", run), run_dir=sys.argv[1], record=sys.argv[2], launcher="local",
             signal_delay_s=20)
def preempted(signum, frame):  # what submitit's handler does: checkpoint() in the job's main thread
    print("requeued" if job.checkpoint() is not None else "not requeued", flush=True)
    raise SystemExit(0)
signal.signal(signal.SIGUSR2, preempted)
threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGUSR2)).start()
job()
"""


def test_the_preemption_signal_while_the_job_waits_for_its_run_stops_it_and_requeues_it(tmp_path):
    """The signal interrupts the job's main thread while it waits for the run: checkpoint() must see the run end
    (it ends within a second of its SIGTERM) and return, not wait on the waiting thread's lock."""
    (tmp_path / "job.py").write_text(SIGNALLED)
    record = tmp_path / "jobs" / "r.json"
    # a job waiting on the lock would hang: the timeout (far above the seconds it takes) fails the test
    done = subprocess.run([sys.executable, str(tmp_path / "job.py"), str(tmp_path / "run"), str(record)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.split() == ["requeued"], done.stdout + done.stderr[-2000:]
    assert read_record(record)["requeues"][0]["job_id"] == "99"


def test_a_job_restarted_by_slurm_notes_the_requeue_then_runs_and_records_its_job(tmp_path, monkeypatch):
    seen = tmp_path / "env.json"
    command = (sys.executable, "-c", "import json, os; json.dump({k: os.environ.get(k) for k in ('AIBR_JOB_LAUNCHER', "
               f"'AIBR_JOB_ID', 'AIBR_JOB_RESTARTS', 'OMP_NUM_THREADS')}}, open({str(seen)!r}, 'w'))")
    job = RunJob(**{**_job(tmp_path).__dict__, "command": command, "environment": (("OMP_NUM_THREADS", "3"),)})
    for key, value in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "55", "SLURM_RESTART_COUNT": "1"}.items():
        monkeypatch.setenv(key, value)
    _checkpoint(Path(job.run_dir), 12)
    job()
    env = json.loads(seen.read_text())
    assert env == {"AIBR_JOB_LAUNCHER": "slurm", "AIBR_JOB_ID": "55", "AIBR_JOB_RESTARTS": "1", "OMP_NUM_THREADS": "3"}
    assert job_in_environment(env) == {"launcher": "slurm", "id": "55", "restarts": 1}
    assert [(e["count"], e["iteration"]) for e in _events(Path(job.run_dir))] == [(1, 12)]
    seen.unlink()
    job()  # the same start again (restart 1 is noted already): nothing more noted
    assert len(_events(Path(job.run_dir))) == 1 and seen.is_file()
    seen.unlink()
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")  # requeued again, the checkpoint still at 12
    with pytest.raises(RunFailed, match="iteration 12"):
        job()
    assert not seen.exists()


def test_run_json_names_the_slurm_job_a_run_was_started_in():
    assert job_in_environment({"SLURM_JOB_ID": "9", "SLURM_RESTART_COUNT": "2"}) == \
        {"launcher": "slurm", "id": "9", "restarts": 2}
    assert job_in_environment({"AIBR_JOB_LAUNCHER": "local", "AIBR_JOB_ID": "123", "AIBR_JOB_RESTARTS": "0"}) == \
        {"launcher": "local", "id": "123", "restarts": 0}
    assert job_in_environment({}) is None


def test_local_slots_share_the_cores_and_the_gpus_without_overlap():
    two = local_slots(2, gpus_per_run=1, cores=[0, 1, 2, 3, 4], gpus=[])
    assert [s.cores for s in two] == [(0, 1), (2, 3, 4)] and all(s.cuda_devices is None for s in two)
    assert local_slots(1, gpus_per_run=1, cores=[0, 1], gpus=[])[0].cores == ()  # one at a time: untouched
    gpus = local_slots(None, gpus_per_run=2, cores=list(range(8)), gpus=["0", "1", "2", "3"])
    assert [s.cuda_devices for s in gpus] == ["0,1", "2,3"] and [s.cores for s in gpus] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert len(local_slots(None, gpus_per_run=1, cores=[0, 1], gpus=[])) == 1


def test_slurm_options_from_a_cluster_file_and_flags(tmp_path):
    (tmp_path / "cluster.yaml").write_text("slurm:\n  partition: gpu\n  time: 1-00:00:00\n  signal-delay: 120\n"
                                           "  sbatch: --qos high --exclusive\n")
    options = slurm_options({"partition": "debug", "cpus": 8}, str(tmp_path / "cluster.yaml"))
    assert (options.partition, options.time, options.signal_delay, options.cpus) == ("debug", "1-00:00:00", 120, 8)
    assert _sbatch_options(options.sbatch) == {"qos": "high", "exclusive": True}
    assert [parse_time(t) for t in ("90", "30:30", "24:00:00", "2-12", "1-00:30")] == [90, 31, 1440, 3600, 1470]


@pytest.mark.parametrize("args, culprit", [
    (["--launcher", "pbs"], "--launcher 'pbs': expected one of local, slurm"),
    (["--jobs", "0"], "--jobs '0': expected a whole number >= 1"),
    (["--betas", "1e-3", "big"], "--betas 'big': expected a number >= 0"),
    (["--seeds", "one"], "--seeds 'one': expected whole numbers"),
    (["-f", "params/missing.yaml"], "parameter file not found: "),
    (["--launcher", "slurm", "--time", "10"], "--launcher slurm: sbatch and srun not found on PATH"),
    (["--launcher", "slurm"], "--launcher slurm needs --time"),
    (["--launcher", "slurm", "--time", "10", "--cluster", "CLUSTER"], "unknown key(s) nodes, qos in 'slurm:'"),
    (["--partition", "gpu"], "--partition is a Slurm option: use it with --launcher slurm"),
    (["--launcher", "slurm", "--time", "ten"], "--time 'ten': expected a Slurm time limit"),
])
def test_a_mistake_is_one_line_naming_the_culprit(args, culprit, tmp_path, monkeypatch, capsys):
    (tmp_path / "cluster.yaml").write_text("slurm:\n  partition: gpu\n  qos: high\n  nodes: 2\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    argv = ["-f", PARAMS, "--results", str(tmp_path / "r"), "--runs", str(tmp_path / "runs"),
            *[str(tmp_path / "cluster.yaml") if a == "CLUSTER" else a for a in args]]
    assert sweep_cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and culprit in err[0], err
    assert not (tmp_path / "runs" / "jobs").exists()


def test_python_m_aiblib_lists_sweep_and_its_help_names_the_launcher_flags():
    from aiblib.__main__ import COMMANDS

    assert COMMANDS["sweep"][0] == "sweep" and COMMANDS["score"][0] == "score"
    text = sweep_cli._parser().format_help()
    assert all(flag in text for flag in ("--launcher", "--jobs", "--signal-delay", "--cluster", "--status", "--report"))


def test_report_alone_writes_04_over_the_results_and_submits_nothing(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(sweep_cli, "write_report", lambda results: asked.append(results))
    monkeypatch.setattr(sweep_cli, "run_sweep", lambda *a, **k: pytest.fail("--report ran the sweep"))
    results = str(tmp_path / "results")
    assert sweep_cli.main(["-f", PARAMS, "--results", results, "--runs", str(tmp_path / "runs"), "--report"]) == 0
    assert asked == [results] and not (tmp_path / "runs").exists()


def test_ctrl_c_while_following_slurm_jobs_leaves_them_running_and_says_how_to_follow_them(tmp_path, monkeypatch):
    class Submitting:  # stands for SlurmLauncher: submits, and the jobs run elsewhere
        name = "slurm"

        def job(self, *, name, command, run_dir):
            return name

        def submit(self, name):
            return types.SimpleNamespace(job_id="7", paths=types.SimpleNamespace(stdout=tmp_path / f"{name}.out"))

    def states_then_ctrl_c(todo, *, results, runs, digest):
        os.kill(os.getpid(), signal.SIGINT)  # handled as the call returns, as a Ctrl-C between two polls
        return [runner.RunState(spec.name, "running", "7") for spec in todo]

    monkeypatch.setattr(runner, "run_done", lambda spec, results, digest: False)
    monkeypatch.setattr(runner, "run_states", states_then_ctrl_c)
    monkeypatch.setattr(runner, "write_report", lambda *a, **k: pytest.fail("an interrupted sweep wrote its report"))
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the tests run in the background, as in CI
    with pytest.raises(Interrupted) as stopped:
        runner.run_sweep(_sweep(tmp_path), Submitting(), poll_s=0.01)
    assert stopped.value.exit_status == 130
    assert str(stopped.value).startswith("sweep interrupted (Ctrl-C) while following its 6 Slurm job(s): they go on; "
                                         "--status follows them")
    assert signal.getsignal(signal.SIGINT) is before  # the runner's handler is gone


def test_a_sweep_computes_the_code_digest_once_and_asks_git_nothing_to_tell_its_finished_runs(tmp_path, monkeypatch,
                                                                                           capsys):
    sweep = _sweep(tmp_path)  # 6 runs
    for spec in expand(sweep):
        marker = Path(sweep.results) / spec.name / "run.json"
        marker.parent.mkdir(parents=True)
        given = run_given(name=spec.name, results=sweep.results, pairs=list(spec.pairs))
        marker.write_text(json.dumps({**run_inputs(params_file=PARAMS, given=given, digest="d1"), "commit": "c"}))
    digests = []
    monkeypatch.setattr(runner, "code_digest", lambda: digests.append("d1") or "d1")
    monkeypatch.setattr("aiblib.notebooks.runner.code_digest", lambda **_: pytest.fail("the digest was computed again"))
    monkeypatch.setattr("aiblib.notebooks.runner._commit", lambda root: pytest.fail("git was asked for the commit"))
    monkeypatch.setattr(runner, "write_report", lambda results, label="": None)
    launcher = types.SimpleNamespace(name="slurm", submit=lambda job: pytest.fail("a finished run was submitted"))
    assert runner.run_sweep(sweep, launcher) == 0
    assert digests == ["d1"] and "sweep: 6 runs, 6 done, 0 to run" in capsys.readouterr().out

    monkeypatch.setattr(runner, "code_digest", lambda: "d2")  # the shaping code changed: every run is to run again
    monkeypatch.setattr(runner, "_run_slurm", lambda todo, **_: [runner.RunState(s.name, "failed") for s in todo])
    assert runner.run_sweep(sweep, launcher) == 1
    assert "sweep: 6 runs, 0 done, 6 to run" in capsys.readouterr().out
