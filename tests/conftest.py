"""Shared fixtures: the real configs composed through Hydra, and the real data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
DATA = Path(os.environ.get("NAOLIT_DATA_DIR", ROOT.parent / "shared" / "data"))
NB201_CSV = DATA / "nb201" / "nb201_merged_15625.csv"
# The configs read these: point them at this checkout and at the real data beside it.
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
os.environ.setdefault("NAOLIT_DATA_DIR", str(DATA))


# Child processes of tests (train.py, benchmark scripts) run on one torch thread too: see one_thread.
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """The tests' tensors are tiny: a second intra-op thread only waits for a busy core (tens of ms per op,
    often 50x the work)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def compose_cfg():
    """compose_cfg(overrides) -> the real config tree, composed like `python train.py overrides`."""

    def _compose(overrides: list[str] | None = None):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="config", overrides=overrides or [], return_hydra_config=True)

    yield _compose
    GlobalHydra.instance().clear()
