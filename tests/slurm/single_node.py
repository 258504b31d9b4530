"""A real single-node Slurm on this machine, for ``make test-slurm``: install, configure, start, stop.

Debian's ``slurm-wlm`` (Slurm 22.05) and ``munge``, installed with apt-get when ``slurmctld`` or ``sbatch`` is
missing (as root, or with ``sudo -n``). :func:`start` writes ``slurm.conf`` into a folder of its own — the node is
this machine on 127.0.0.1 with its CPUs and memory, one partition, every state, spool, pid and log file in that
folder, ports chosen free — starts ``munged`` when it is not answering, then ``slurmctld -f CONF`` and
``slurmd -f CONF``, all under ``nice -n 19`` (the jobs inherit slurmd's niceness), and waits for the node to be
``idle``. :meth:`SingleNodeSlurm.stop` cancels what is left in the queue and ends every daemon it started by the
pid its pid file holds, ``munged`` only when it started it, and says which are still alive.

Client commands and the jobs find this Slurm through ``SLURM_CONF`` (:meth:`SingleNodeSlurm.env`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
INSTALL_HINT = "apt-get install -y slurm-wlm munge (Debian's packages, as root)"
PARTITION = "aibr"
# Seconds between the SIGTERM a job gets when it is requeued, cancelled or out of time and the SIGKILL that
# follows: time for a training to write its checkpoint, on a CPU shared with other work.
KILL_WAIT = 30
MUNGE_RUN = Path("/run/munge")
MUNGE_PID = MUNGE_RUN / "munged.pid"
NICE = ["nice", "-n", "19"]


def as_root() -> list[str] | None:
    """The prefix that runs a command as root: [] as root, ``sudo -n`` where it needs no password, else None."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def missing() -> list[str]:
    """The Slurm and munge programs this machine lacks."""
    return [p for p in ("slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "munged", "munge")
            if not (shutil.which(p) or Path("/usr/sbin", p).exists())]


def install(root: list[str]) -> None:
    """apt-get update, then install Debian's slurm-wlm and munge (quietly; the output only on failure)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        done = subprocess.run([*root, *NICE, *cmd], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_resources() -> tuple[str, int, int]:
    """(node name, CPUs, RealMemory in MB) as slurmd measures this machine (``slurmd -C``)."""
    out = subprocess.run([_program("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(item.split("=", 1) for item in out.split() if "=" in item)
    return fields["NodeName"], int(fields["CPUs"]), int(fields["RealMemory"])


def write_config(folder: Path) -> Path:
    """``folder/slurm.conf``: one node (this machine on loopback), one default partition, files in ``folder``."""
    node, cpus, memory = node_resources()
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    lines = [
        "ClusterName=aibr-test",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'slurmd.log'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_CPU_Memory",
        f"DefMemPerCPU={memory // cpus}",
        "SchedulerType=sched/backfill",
        "MpiDefault=none",
        "ReturnToService=2",
        "JobRequeue=1",
        "MinJobAge=3600",  # finished jobs stay in scontrol show job for the test to read (no accounting)
        f"KillWait={KILL_WAIT}",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP",
    ]
    conf = folder / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (ended, not yet reaped by its parent) is gone for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def munge_answers() -> bool:
    """Whether a munged answers on the default socket (a credential encodes)."""
    return subprocess.run([_program("munge"), "-n"], capture_output=True).returncode == 0


def _wait(condition, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text().splitlines()[-20:]) if log and log.is_file() else ""
            raise RuntimeError(f"{what} within {timeout:.0f} s" + (f"; the end of {log}:\n{tail}" if tail else ""))
        time.sleep(0.5)


@dataclass
class SingleNodeSlurm:
    """A running single-node Slurm configured by ``conf``; the daemons this object started, by name and pid."""

    folder: Path
    conf: Path
    root: list[str]
    started: dict[str, int] = field(default_factory=dict)
    steps_before: set[int] = field(default_factory=set)

    def env(self, base: dict | None = None) -> dict:
        """An environment whose Slurm commands talk to this Slurm."""
        return dict(os.environ if base is None else base, SLURM_CONF=str(self.conf))

    def run(self, *cmd: str, check: bool = True) -> str:
        """A Slurm client command against this Slurm; its stdout."""
        done = subprocess.run(list(cmd), env=self.env(), capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def node_state(self) -> str:
        return self.run("sinfo", "-h", "-N", "-o", "%T", check=False).strip()

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job``'s fields of one job (empty once Slurm has forgotten it)."""
        out = self.run("scontrol", "show", "job", "-o", job_id, check=False)
        return dict(item.split("=", 1) for item in out.split() if "=" in item)

    def queue(self) -> list[str]:
        """The ids of the jobs Slurm still lists as pending or running."""
        return self.run("squeue", "-h", "-o", "%i").split()

    def stop(self, timeout: float = 60.0) -> list[str]:
        """Cancel every job left, end every daemon this object started; the ones still alive after ``timeout``."""
        if "slurmctld" in self.started and alive(self.started["slurmctld"]):
            self.run("scancel", f"--partition={PARTITION}", check=False)
            try:
                _wait(lambda: not self.queue(), timeout, "the queue did not empty")
            except RuntimeError:
                pass
        for name in ("slurmd", "slurmctld", "munged"):  # the node first, munge last: they authenticate with it
            pid = self.started.get(name)
            if pid and alive(pid):
                subprocess.run([*self.root, "kill", "-TERM", str(pid)], capture_output=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.still_alive():
            time.sleep(0.5)
        return self.still_alive()

    def still_alive(self) -> list[str]:
        """The daemons this object started, and the job steps slurmd forked, that are still running."""
        names = [f"{name} (pid {pid})" for name, pid in self.started.items() if alive(pid)]
        return names + [f"slurmstepd (pid {pid})" for pid in sorted(_slurmstepd() - self.steps_before)]


def _slurmstepd() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "^slurmstepd"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split() if alive(int(p))}


def _start_munged(root: list[str]) -> int:
    """Start munged as the munge user (Debian's way) on its default socket; its pid."""
    for folder in (MUNGE_RUN, Path("/var/log/munge"), Path("/var/lib/munge")):
        subprocess.run([*root, "install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", str(folder)], check=True)
    subprocess.run([*root, *NICE, "runuser", "-u", "munge", "--", _program("munged")], check=True,
                   capture_output=True)
    _wait(munge_answers, 30, "munged did not answer")
    pid = _pid(MUNGE_PID)
    if pid is None:
        raise RuntimeError(f"munged started but wrote no pid to {MUNGE_PID}")
    return pid


def start(folder: Path, root: list[str], timeout: float = 60.0) -> SingleNodeSlurm:
    """Configure and start a single-node Slurm in ``folder``; the node is ``idle`` when it returns.

    On failure, whatever it started is stopped before the error propagates.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cluster = SingleNodeSlurm(folder, write_config(folder), root, steps_before=_slurmstepd())
    try:
        if not munge_answers():
            cluster.started["munged"] = _start_munged(root)
        env = cluster.env()
        for name in ("slurmctld", "slurmd"):
            subprocess.run([*root, "env", f"SLURM_CONF={cluster.conf}", *NICE, _program(name), "-f", str(cluster.conf)],
                           env=env, check=True, capture_output=True)
            pid_file, log = folder / f"{name}.pid", folder / f"{name}.log"
            _wait(lambda: _pid(pid_file) is not None and alive(_pid(pid_file)), timeout, f"{name} did not start", log)
            cluster.started[name] = _pid(pid_file)
        _wait(lambda: cluster.node_state() == "idle", timeout,
              f"the node did not come up idle (sinfo: {cluster.node_state()!r})", folder / "slurmd.log")
    except BaseException:
        cluster.stop(timeout=30)
        raise
    return cluster


def kill_left(cluster: SingleNodeSlurm) -> None:
    """SIGKILL what :meth:`SingleNodeSlurm.stop` could not end (the daemons it started, by pid)."""
    for pid in cluster.started.values():
        if alive(pid):
            subprocess.run([*cluster.root, "kill", f"-{signal.SIGKILL.value}", str(pid)], capture_output=True)
