"""Makefile targets checked without running anything long: make clean keeps the trained runs (make clean-runs
deletes them, after naming them), and a sweep's data step leaves make reproduce's results/00-prepare-data.ipynb
alone (make -n: the commands make would run)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest
from conftest import REPO


def _make(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    done = subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture
def project(tmp_path):
    """A folder with the Makefile, a trained run, real and synthetic data, results and caches."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    files = ["runs/dg-aib/checkpoints/last.pth", "runs/sweep-dg/dg-baseline-s0/checkpoints/last.pth",
             "data/synthetic/cityscapes/x.png", "data/smoke/cityscapes/x.png", "data/cityscapes/leftImg8bit/x.png",
             "results/dg-aib/scores.json", ".pytest_cache/v", "aiblib/__pycache__/paths.cpython-311.pyc"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"\0" * 4096)
    return tmp_path


def test_make_clean_keeps_the_trained_runs_and_removes_what_is_cheap_to_rebuild(project):
    _make("clean", cwd=project)
    for kept in ("runs/dg-aib/checkpoints/last.pth", "runs/sweep-dg/dg-baseline-s0/checkpoints/last.pth",
                 "data/cityscapes/leftImg8bit/x.png", "results/dg-aib/scores.json"):
        assert (project / kept).is_file(), kept
    for removed in ("data/synthetic", "data/smoke", ".pytest_cache", "aiblib/__pycache__"):
        assert not (project / removed).exists(), removed


def test_make_clean_runs_names_the_run_folders_and_their_size_then_deletes_them(project):
    out = _make("clean-runs", cwd=project).stdout
    listed = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert sorted(folder for _, folder in listed) == ["runs/dg-aib", "runs/sweep-dg"], out
    assert all(size[0].isdigit() for size, _ in listed) and "deleting runs/" in out, out
    assert not (project / "runs").exists() and (project / "results/dg-aib/scores.json").is_file()
    assert "nothing to delete" in _make("clean-runs", cwd=project).stdout


def _data_notebooks(dry_run: str) -> list[str]:
    """The executed-copy paths of the 00-prepare-data commands in ``make -n`` output."""
    out = []
    for line in dry_run.splitlines():
        words = shlex.split(line) if "aiblib notebook 00-prepare-data" in line else []
        if words:
            out.append(words[words.index("00-prepare-data") + 1])
    return out


def test_a_sweeps_data_step_writes_into_the_sweeps_folder_not_results(tmp_path):
    results = tmp_path / "results"
    sweep = _make("-n", "sweep", "SEEDS=0", "BETAS=0", f"RESULTS={results}").stdout
    assert _data_notebooks(sweep) == [f"{results}/sweep-dg/00-prepare-data.ipynb"], sweep
    seeds = _make("-n", "seeds", "SEEDS=0", f"RESULTS={results}").stdout
    assert _data_notebooks(seeds) == [f"{results}/seeds-{p}/00-prepare-data.ipynb" for p in ("dg", "night")], seeds
    # make reproduce's data step is the one that writes results/00-prepare-data.ipynb
    reproduce = _make("-n", "reproduce", f"RESULTS={results}").stdout
    assert _data_notebooks(reproduce) == [f"{results}/00-prepare-data.ipynb"], reproduce


def _sweeps(dry_run: str) -> list[dict[str, list[str]]]:
    """The ``python -m aiblib sweep`` commands in ``make -n`` output: option -> the words after it."""
    out = []
    for line in dry_run.replace("\\\n", " ").splitlines():
        words = shlex.split(line) if "-m aiblib sweep " in line else []
        options: dict[str, list[str]] = {}
        for word in words[words.index("sweep") + 1:] if words else []:
            if word.startswith("-"):
                key = word
                options.setdefault(key, [])
            else:
                options[key].append(word)
        if words:
            out.append(options)
    return out


def _names(sweep: dict[str, list[str]]) -> set[str]:
    from aiblib.sweeps import Sweep, expand

    grid = Sweep(params_file=sweep["-f"][0], protocol=sweep["--protocol"][0], betas=tuple(sweep["--betas"]),
                 seeds=tuple(sweep["--seeds"]), results=sweep["--results"][0], runs=sweep["--runs"][0])
    return {spec.name for spec in expand(grid)}


@pytest.mark.parametrize("target", ["sweep", "seeds", "camvid", "camvid-beta", "paper"])
def test_the_grid_targets_call_the_sweep_runner_and_keep_no_loop_of_their_own(target):
    """make -n: each grid target runs python -m aiblib sweep, with LAUNCHER, JOBS and SLURM passed through, and no
    shell loop (make -n prints a loop of the recipe as it is)."""
    commands = _make("-n", target, "CAMVID=data/camvid", "LAUNCHER=slurm", "SLURM=--partition gpu --time 24:00:00").stdout
    sweeps = _sweeps(commands)
    assert sweeps and all(s["--launcher"] == ["slurm"] and s["--partition"] == ["gpu"] and s["--time"] == ["24:00:00"]
                          for s in sweeps), commands
    assert not re.search(r"\b(for \w+ in|while) ", commands), commands
    local = _sweeps(_make("-n", target, "CAMVID=data/camvid", "JOBS=2").stdout)
    assert all(s["--launcher"] == ["local"] and s["--jobs"] == ["2"] for s in local)


def test_make_camvid_beta_runs_every_beta_paired_with_its_seeds_baseline_and_five_seeds_of_the_papers_beta():
    # make -n expands the nested makes too: the sweep commands the grid would execute
    commands = _make("-n", "camvid-beta", "CAMVID=data/camvid").stdout
    sweeps = _sweeps(commands)
    names = set().union(*map(_names, sweeps))
    for seed in (0, 1, 2):
        assert f"camvid-dusk-baseline-s{seed}" in names
        for beta in ("0", "1e-4", "1e-3", "1e-2", "1e-1"):
            assert f"camvid-dusk-aib-b{beta}-s{seed}" in names
    for seed in (3, 4):  # the paper's beta over 5 seeds, each with its baseline
        assert {f"camvid-dusk-baseline-s{seed}", f"camvid-dusk-aib-b1e-3-s{seed}"} <= names
        assert f"camvid-dusk-aib-b0-s{seed}" not in names
    assert len(names) == 3 * 6 + 2 * 2
    assert all(s["--results"] == ["results/camvid-beta"] and s["-p"] == ["camvid_root", "data/camvid"] for s in sweeps)
    # then 03 on real frames for the paper's β and seed 0 against its baseline: mu per class, day against dusk
    assert ("03-visualize-attention results/camvid-beta/camvid-dusk-aib-b1e-3-s0-attention/" in commands
            and "-p baseline_name camvid-dusk-baseline-s0 -p aib_name camvid-dusk-aib-b1e-3-s0 -p runs_root runs/camvid-beta"
            in commands), commands


def test_make_seeds_and_camvid_take_the_beta_of_their_parameter_file():
    """BETAS empty: the runner names the runs with the file's β as typed (1.0e-3), as the old sed did."""
    for target, files in (("seeds", ["params/synthetic-dg.yaml", "params/synthetic-night.yaml"]),
                          ("camvid", ["params/camvid-dusk.yaml"])):
        sweeps = _sweeps(_make("-n", target, "CAMVID=data/camvid", "SEEDS=0", "CAMVID_SEEDS=0").stdout)
        assert [s["-f"] for s in sweeps] == [[f] for f in files] and not any("--betas" in s for s in sweeps)
    camvid = _make("-n", "camvid", "CAMVID=data/camvid", "CAMVID_SEEDS=3 4").stdout
    assert "-p aib_name camvid-dusk-aib-b1.0e-3-s3" in camvid and "aiblib score runs/dg-baseline" in camvid


def test_make_paper_pairs_the_paper_run_with_its_baseline_per_seed():
    (sweep,) = _sweeps(_make("-n", "paper", "RUN=night-r50", "SEEDS=0 1 2", "GPUS=4").stdout)
    assert sweep["-f"] == ["params/paper/night-r50.yaml"] and sweep["--seeds"] == ["0", "1", "2"]
    assert sweep["--baseline-params"] == ["params/paper/night-r50-baseline.yaml"] and sweep["--gpus"] == ["4"]
    assert sweep["--results"] == ["results/paper-night-r50"] and sweep["--runs"] == ["runs/paper-night-r50"]


def test_make_robustness_runs_05_per_protocol_as_make_steps_not_a_loop():
    commands = _make("-n", "robustness", "ROBUSTNESS_PROTOCOLS=dg night", "EXTRA=-p max_images 0").stdout
    lines = [line for line in commands.replace("\\\n", " ").splitlines() if "notebook 05-robustness" in line]
    assert [shlex.split(line)[shlex.split(line).index("protocol") + 1] for line in lines] == ["dg", "night"]
    assert all("-p threads 1 -p max_images 0" in line for line in lines)
    assert not re.search(r"\b(for \w+ in|while) ", commands), commands
