"""One precision for the embedded default, and records that say which precision and machine computed a run."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, tiny_config

from aiblib.config import environment, load_config
from aiblib.config.runtime import cpu_model
from aiblib.storage import ENVIRONMENT_KEYS, training_environment

# the parameter files of make reproduce, make seeds and make camvid (and the synthetic R50 of the GPU check)
EMBEDDED = ["synthetic-dg.yaml", "synthetic-night.yaml", "camvid-dusk.yaml", "synthetic-dg-r50.yaml"]


@pytest.mark.parametrize("name", EMBEDDED)
def test_the_embedded_parameter_files_name_one_precision(name):
    # 'auto' would train in bf16 on one machine and in fp32 on another from the same command
    raw = yaml.safe_load((REPO / "params" / name).read_text())
    assert raw["amp"] in ("bf16", "off"), raw["amp"]
    assert load_config(REPO / "params" / name).amp == raw["amp"]


def test_environment_names_the_precision_the_device_the_cpu_and_torch():
    cpu = torch.device("cpu")
    assert environment(cpu, use_bf16=True)["precision"] == "bf16"
    env = environment(cpu, use_bf16=False)
    assert env["precision"] == "fp32" and env["device"] == "cpu" and env["torch"] == torch.__version__
    assert env["cpu"] == cpu_model() and env["cpu"]
    assert set(env) == set(ENVIRONMENT_KEYS)
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
             if line.startswith("model name")] if info.is_file() else []
    assert env["cpu"] == (names[0] if names else platform.processor() or platform.machine())


@pytest.mark.parametrize("amp, precision", [("bf16", "bf16"), ("off", "fp32")])
def test_the_training_log_records_the_precision_used_and_the_machine(synthetic_root, tmp_path, amp, precision):
    from aiblib.training import train

    cfg = tiny_config(synthetic_root, tmp_path / "run", iterations=2, amp=amp)
    run_dir = train(cfg)
    (env,) = training_environment(run_dir)
    assert env["precision"] == precision and env["iteration"] == 0
    assert env["device"] == "cpu" and env["torch"] == torch.__version__ and env["cpu"] == cpu_model()
    # a resume on another machine (here: another precision) is a second entry, at the iteration it resumed from
    train(cfg.replace(iterations=4, amp="off" if amp == "bf16" else "bf16"))
    first, second = training_environment(run_dir)
    assert first == env and second["iteration"] == 2 and second["precision"] != precision


def test_a_log_without_environment_keys_gives_an_empty_record(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"kind": "event", "iteration": 0, "time": 1, "event": "start", "bf16": true}\n')
    assert training_environment(tmp_path) == []
    assert training_environment(tmp_path / "missing") == []


def test_scores_json_records_where_the_training_and_the_scoring_computed(synthetic_root, tmp_path):
    from aiblib.evaluation import evaluate_checkpoint
    from aiblib.reporting import report
    from aiblib.training import train

    cfg = tiny_config(synthetic_root, tmp_path / "run", iterations=2, amp="bf16")
    run_dir = train(cfg)
    scored = evaluate_checkpoint(cfg.replace(amp="off"), run_dir / "checkpoints" / "last.pth", dataset="bdd100k",
                                 split="val", out_dir=tmp_path / "eval", quiet=True)
    summary = report.write_scores(tmp_path, cfg, {"bdd100k:val": scored}, checkpoint="last.pth")
    assert summary["training"] == training_environment(run_dir) and summary["training"][0]["precision"] == "bf16"
    assert summary["evaluation"] == environment(torch.device("cpu"), use_bf16=False)
    assert summary["attention_stats"]["bdd100k:val"]["num_images"] == 2
