"""The sweep runner against a real Slurm: a single-node Slurm on this machine, started and stopped by the test.

Run by ``make test-slurm`` (not by ``make test``: it installs Debian's ``slurm-wlm`` and ``munge`` when they are
missing and runs Slurm's daemons as root). The session fixture :func:`slurm` configures and starts ``slurmctld`` and
``slurmd`` (and ``munged`` when none answers) in a temporary folder (:mod:`single_node`), and at the end stops every
daemon it started and checks that they are gone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

if not os.environ.get("AIBR_SLURM_TEST"):
    pytest.skip("the Slurm test runs with `make test-slurm` (it installs and starts a single-node Slurm)",
                allow_module_level=True)

import single_node  # noqa: E402  (tests/slurm/single_node.py)


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
