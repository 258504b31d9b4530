"""make as a user types it: make camvid (and the make sweep it runs) on a tiny CamVid folder and its rerun; Ctrl-C
through make run's command."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest
from conftest import REPO, subprocess_env, tiny_config


@pytest.mark.slow
def test_ctrl_c_during_a_notebook_run_reaches_the_kernel_which_saves_and_stops(tmp_path, synthetic_root):
    """``python -m aiblib run`` (what make run calls): one SIGINT is passed on to the kernel, whose
    training saves last.pth and stops; the command ends with the training's one line and status 130."""
    import signal
    import sys

    from aiblib.storage import safe_load

    command = [sys.executable, "-m", "aiblib", "run", "sig", "-f", "params/smoke.yaml", "--results",
               str(tmp_path / "results"), "-p", "runs_root", str(tmp_path / "runs"), "-p", "iterations", "300",
               "-p", "data_root", str(synthetic_root)]
    proc = subprocess.Popen(command, cwd=REPO, env=subprocess_env() | {"CI": ""}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # training has started when its progress lines appear
        if "iteration 3/300" in line:
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "training stopped by SIGINT after iteration" in lines[0], err[-2000:]
    assert "Traceback" not in err
    last = tmp_path / "runs" / "sig" / "checkpoints" / "last.pth"
    assert 3 <= safe_load(last)["iteration"] < 300
    assert not (tmp_path / "runs" / "sig" / ".lock").exists()


@pytest.mark.slow
@pytest.mark.e2e
def test_make_camvid_end_to_end_on_a_tiny_camvid_folder(tmp_path, camvid_root, synthetic_root):
    """``make camvid`` as README writes it, on the test's own CamVid folder: the data check, seed 0's pair of
    camvid-dusk through ``make sweep``, a DG run scored on CamVid day and dusk (paired into results/comparison.csv)
    and 03's figures on real-layout frames; then the command with seeds 0 and 1 skips seed 0's two finished runs
    (make sweep's resumption, which make seeds uses too), trains seed 1's and reports both (results/camvid:
    comparison.csv with its columns, per-class tables, the summary's mean and std over the seeds)."""
    from aiblib.config import load_config
    from aiblib.reporting import COLUMNS, report
    from aiblib.training import train

    results, runs = tmp_path / "results", tmp_path / "runs"
    dg = [train(tiny_config(synthetic_root, runs / name, name=name, protocol="dg", attention=attention, iterations=2))
          for name, attention in (("dg-baseline", False), ("dg-aib", True))]
    for run in dg:  # as make reproduce leaves them: a scores.json per run under RESULTS (04 gathers those)
        cfg = load_config(run / "config.yaml")
        report.write_scores(_mkdir(results / cfg.name), cfg, {"cityscapes:val": {"mIoU": 1.0, "num_images": 2}},
                            checkpoint=run / "checkpoints" / "last.pth")
    tiny = ("-p iterations 2 -p crop_size [32,32] -p base_size [24,32] -p aspp_channels 32 -p skip_channels 8 "
            "-p aux_channels 16 -p images_per_iteration 2")
    env = {k: v for k, v in subprocess_env().items() if k != "PYTHONPATH"}

    def make_camvid(seeds: str, dg_runs: list) -> subprocess.CompletedProcess:
        command = ["make", "--no-print-directory", "camvid", f"CAMVID={camvid_root}", f"CAMVID_SEEDS={seeds}",
                   f"RESULTS={results}", f"CAMVID_RUNS={runs / 'camvid'}", f"DG_RUNS={' '.join(map(str, dg_runs))}",
                   f"CAMVID_EXTRA={tiny}"]
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "dusk" in done.stdout
        assert "Passed unknown parameter" not in done.stdout + done.stderr  # the sweep shows its runs on stdout
        return done

    make_camvid("0", dg)
    camvid = results / "camvid"
    seed0 = {p: p.read_text() for p in camvid.glob("camvid-dusk-*-s0/scores.json")}
    real = pd.read_csv(results / "comparison.csv")  # synthetic -> real: the DG run's CamVid scores
    assert {"camvid:test-day", "camvid:dusk"} <= set(real[real["protocol"] == "dg"]["domain"])
    figures = sorted(p.name for p in camvid.glob("camvid-dusk-aib-b*-s0-attention/*.png"))
    assert any(name.startswith("camvid-dusk_") for name in figures) and any("test-day" in n for n in figures)
    for run in camvid.glob("camvid-dusk-*-s0"):  # run.json says how the training computed: params name fp32
        (trained,) = json.loads((run / "run.json").read_text())["training"]
        assert trained["precision"] == "fp32" and trained["device"] == "cpu" and trained["iteration"] == 0

    again = make_camvid("0 1", [])
    assert again.stdout.count("already done with these parameters") == 2 and again.stdout.count("01-train: running") == 2, again.stdout[-3000:]
    assert len(seed0) == 2 and all(p.read_text() == text for p, text in seed0.items())
    paired = pd.read_csv(camvid / "comparison.csv")
    assert list(paired.columns) == COLUMNS and set(paired["protocol"]) == {"camvid-dusk"}
    assert {"camvid:test-day", "camvid:dusk", "camvid:val"} == set(paired["domain"]) and (paired["seeds"] == 2).all()
    per_class = pd.read_csv(camvid / "camvid-dusk-baseline-s1" / "per_class.csv", index_col="class")
    assert "bicyclist" in per_class.index and "rider" not in per_class.index  # CamVid's 11 classes
    summary = pd.read_csv(camvid / "summary.csv")
    assert sorted(summary["method"]) == ["AIBR", "baseline"] and (summary["seeds"] == 2).all()
    assert summary["camvid:dusk std"].notna().all() and (summary["camvid:dusk std"] >= 0).all()
    assert (camvid / "miou_vs_beta.png").is_file()
    assert {"camvid:test-day", "camvid:dusk"} <= set(pd.read_csv(results / "comparison.csv").query("protocol == 'dg'")["domain"])


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path
