"""make as a user types it: the β × seed sweep on the smoke parameters, and its rerun."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest
from conftest import REPO, subprocess_env


@pytest.mark.slow
def test_make_sweep_reports_mean_and_std_and_a_rerun_skips_the_finished_runs(tmp_path):
    results, runs = tmp_path / "results", tmp_path / "runs"
    command = ["make", "--no-print-directory", "sweep", "PARAMS=params/smoke.yaml", "BETAS=0 1e-3", "SEEDS=0 1",
               f"RESULTS={results}", f"SWEEP_RUNS={runs}"]
    env = {k: v for k, v in subprocess_env().items() if k != "PYTHONPATH"}
    first = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "[1/14] 00-prepare-data" in first.stdout and "[14/14] 04-report" in first.stdout
    assert first.stdout.count("01-train: done in") == 6 and "Passed unknown parameter" not in first.stderr
    summary = pd.read_csv(results / "sweep-dg" / "summary.csv")
    assert sorted(summary["method"]) == ["AIBR", "AIBR", "baseline"] and (summary["seeds"] == 2).all()
    assert summary["cityscapes:val std"].notna().all() and (summary["cityscapes:val std"] >= 0).all()
    assert (results / "sweep-dg" / "miou_vs_beta.png").is_file()

    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert second.stdout.count("skipped") == 6 and "01-train: running" not in second.stdout
    assert pd.read_csv(results / "sweep-dg" / "summary.csv").equals(summary)
