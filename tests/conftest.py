"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny prepared synthetic data root: 4 train / 2 val images per domain at 64x128 (h, w).

    Holds cityscapes/ (with labelTrainIds made by the official tool), bdd100k/ and
    nightcity-fine/ in the layouts of SPEC section 3. Treat it as read-only.
    """
    from aiblib.prepare import prepare
    from aiblib.synth import generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(root, n_train=4, n_val=2, size=(64, 128), seed=0, workers=1)
    df = prepare(root, verbose=False)
    assert not df.attrs["problems"], df.attrs["problems"]
    return root
