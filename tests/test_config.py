from __future__ import annotations

import dataclasses
import re
import typing

import pytest
import yaml

from aiblib.config import MODEL_KEYS, Config, images_per_process, load_config, parse_overrides


def test_defaults_are_the_reference_schedule():
    cfg = Config()
    assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.poly_power, cfg.min_lr) == (0.01, 0.9, 5e-4, 0.9, 1e-4)
    assert cfg.crop_size == [512, 1024] and cfg.base_size == [1024, 2048]
    assert cfg.depth == 50 and cfg.beta == 1e-3 and cfg.test_samples == 4


def test_defaults_are_the_reference_batch_and_precision():
    cfg = Config()
    assert cfg.images_per_iteration == 8  # 2 per GPU x 4 GPUs
    assert cfg.amp == "off" and cfg.channels_last is False and cfg.compile is False  # fp32 eager, as the reference


@pytest.mark.parametrize("world,expected", [(1, 8), (2, 4), (4, 2), (8, 1)])
def test_images_per_iteration_split_over_processes(world, expected):
    assert images_per_process(Config(images_per_iteration=8), world) == expected


def test_a_split_that_does_not_divide_is_refused_with_the_choices():
    with pytest.raises(ValueError) as info:
        images_per_process(Config(images_per_iteration=8), 3)
    message = str(info.value)
    assert "images_per_iteration 8" in message and "3 processes" in message and "1, 2, 4 or 8" in message


def test_the_old_batch_size_key_says_what_replaced_it(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("batch_size: 2\n")
    with pytest.raises(ValueError, match=r"old.yaml: config key 'batch_size' is now images_per_iteration \(all processes"):
        load_config(path)


def test_every_field_is_documented():
    for f in dataclasses.fields(Config):
        assert f.metadata.get("doc"), f.name
    assert len(Config.describe().splitlines()) == len(dataclasses.fields(Config))


def test_yaml_then_overrides_precedence(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("depth: 18\nbeta: 1e-4\niterations: 100\ncrop_size: [64, 96]\nname: fromfile\n")
    cfg = load_config(path)
    assert cfg.depth == 18 and cfg.beta == 1e-4 and cfg.iterations == 100 and cfg.crop_size == [64, 96]
    cfg = load_config(path, ["iterations=7", "beta=0", "name=123", "attention=false", "crop_size=[32, 32]"])
    assert cfg.iterations == 7 and cfg.beta == 0.0 and isinstance(cfg.beta, float)
    assert cfg.name == "123" and cfg.attention is False and cfg.crop_size == [32, 32]
    assert cfg.depth == 18  # from the file, untouched by overrides
    cfg = load_config(path, {"iterations": 9, "tta_scales": (0.5, 1)})
    assert cfg.iterations == 9 and cfg.tta_scales == [0.5, 1.0]


@pytest.mark.parametrize(
    "text, key",
    [
        ("deph: 18\n", "deph"),  # unknown key
        ("depth: eighteen\n", "depth"),
        ("depth: 18.0\n", "depth"),  # no silent float -> int
        ("attention: 1\n", "attention"),  # no int -> bool
        ("iterations: true\n", "iterations"),  # no bool -> int
        ("crop_size: 64\n", "crop_size"),
        ("crop_size: [64]\n", "crop_size"),
        ("amp: fp16\n", "amp"),
        ("channels_last: maybe\n", "channels_last"),
        ("name: 3\n", "name"),
        ("lr: fast\n", "lr"),
    ],
)
def test_strict_file_errors_name_the_key(tmp_path, text, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=repr(key)):
        load_config(path)


def test_unknown_key_suggests_and_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("iteration: 5\n")
    with pytest.raises(ValueError, match="bad.yaml.*'iteration'.*'iterations'"):
        load_config(path)
    assert load_config(path, ignore_keys=["iteration"]).iterations == Config().iterations


def test_override_errors():
    with pytest.raises(ValueError, match="'nope'"):
        load_config(None, ["nope=1"])
    with pytest.raises(ValueError, match="'depth'"):
        load_config(None, {"depth": "18"})
    with pytest.raises(ValueError, match="name=value"):
        parse_overrides(["depth"])
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config("missing.yaml")


def test_roundtrip_dump_and_run_dir(tmp_path):
    cfg = load_config(None, {"beta": 1e-5, "channels_last": True, "runs_root": str(tmp_path), "name": "x"})
    path = tmp_path / "config.yaml"
    cfg.save(path)
    assert load_config(path) == cfg
    assert yaml.safe_load(path.read_text())["beta"] == 1e-5  # written with a dot, read back as float
    assert cfg.resolved_run_dir() == tmp_path / "x"
    assert cfg.replace(run_dir=str(tmp_path / "y")).resolved_run_dir() == tmp_path / "y"


def test_model_keys_match_model_config():
    model = pytest.importorskip("aiblib.model")
    fields = {f.name for f in dataclasses.fields(model.ModelConfig)}
    assert set(MODEL_KEYS) == fields
    hints = typing.get_type_hints(Config)
    mhints = typing.get_type_hints(model.ModelConfig)
    for key in MODEL_KEYS:
        assert hints[key] == mhints[key], key
        assert getattr(Config(), key) == getattr(model.ModelConfig(), key), key
    mc = Config(depth=18, beta=0.5).model_config()
    assert isinstance(mc, model.ModelConfig) and mc.depth == 18 and mc.beta == 0.5


def test_the_projects_parameter_files_load(tmp_path):
    """Every key the notebooks' parameter files use is a config key (checked on the lead's files when present)."""
    from pathlib import Path

    params = sorted(Path(__file__).resolve().parents[1].glob("params/**/*.yaml"))
    for path in params:
        load_config(path)
    path = tmp_path / "nb.yaml"
    path.write_text("protocol: dg\nsynthetic: true\nsynth_size: [64, 128]\neval_targets: ['cityscapes:val', 'bdd100k:val']\n")
    cfg = load_config(path)
    assert cfg.eval_targets == ["cityscapes:val", "bdd100k:val"] and cfg.synth_size == [64, 128]
    with pytest.raises(ValueError, match="eval_targets"):
        load_config(None, {"eval_targets": ["bdd100k"]})



def test_every_key_is_checked_once_by_the_configuration_itself(tmp_path):
    """One check per key, wherever a configuration is made: the model's class, the run's class made directly,
    from a dict or from a file accept and refuse the same values, with the same message."""
    from aiblib.model import ModelConfig

    with pytest.raises(ValueError, match=r"^config key 'iterations' expects int, got 'many' \(str\)$"):
        Config(iterations="many")  # an engine key made directly is checked too
    messages = set()
    for make in (lambda: ModelConfig(depth="50"), lambda: Config(depth="50"), lambda: Config.from_dict({"depth": "50"})):
        with pytest.raises(ValueError) as err:
            make()
        messages.add(str(err.value).removeprefix("config: "))
    assert messages == {"config key 'depth' expects int, got '50' (str)"}
    path = tmp_path / "bad.yaml"
    path.write_text("depth: '50'\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: config key 'depth' expects int, got '50' \(str\)$"):
        load_config(path)
    # the same conversions everywhere: YAML's 1e-4 text for a float, int -> float, a tuple for a list
    assert ModelConfig(beta="1e-4").beta == Config(beta="1e-4").beta == load_config(None, ["beta=1e-4"]).beta == 1e-4
    assert isinstance(Config(lr=1).lr, float) and Config(crop_size=(32, 48)).crop_size == [32, 48]
    with pytest.raises(ValueError, match="'tta_scales\\[1\\]' expects float"):
        Config(tta_scales=[1.0, "big"])
