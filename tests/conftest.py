"""Shared fixtures: the real configs composed through Hydra, and the real datasets.

The tests find their data where naolit does: in ``NAOLIT_DATA_DIR`` (a machine without a network
sets it to a folder holding the datasets; CI sets it to ours), else in ``<repo>/data``, where PTB and
WikiText-2 are downloaded (with their checksums) the first time a test needs them. The NAS-Bench-201
table ships with naolit. A test whose dataset is nowhere to be had skips, naming it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from naolit.benchmarks import nb201_table_path
from naolit.data import LanguageModelingDataModule
from naolit.data.download import fetch

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
DATA = Path(os.environ.get("NAOLIT_DATA_DIR") or ROOT / "data")
NB201_CSV = nb201_table_path(data_dir=DATA)  # the table naolit ships, unless DATA holds one
# The configs read these: point them at this checkout and at the data folder.
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
os.environ["NAOLIT_DATA_DIR"] = str(DATA)
CORPUS_NAMES = {"ptb": "Penn Treebank", "wikitext2": "WikiText-2"}


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


@pytest.fixture(scope="session")
def truth():
    """The NAS-Bench-201 table read with plain pandas (``search_helpers.Truth``)."""
    from search_helpers import Truth

    return Truth()


@pytest.fixture
def search_cfg(compose_cfg, tmp_path):
    """search_cfg(name, *overrides): the real config of `train.py +experiment=nb201_nao`, writing to tmp_path/name.

    @hydra.main hands the task function the config without its `hydra` node (and with
    paths.output_dir resolved); compose returns that node with unresolvable run-time fields, so it is
    dropped here and the output folder is set directly.
    """

    def _cfg(name, *overrides):
        out = tmp_path / name
        cfg = compose_cfg(["+experiment=nb201_nao", f"hydra.run.dir={out}", f"paths.output_dir={out}", *overrides])
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    return _cfg


@pytest.fixture(scope="session")
def train_main():
    """train.py's ``main``: called with a composed config it runs the job and returns its objective."""
    spec = importlib.util.spec_from_file_location("train", ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def corpus_folder(corpus: str, splits: tuple[str, ...]) -> Path:
    """DATA, holding ``splits`` of ``corpus`` (downloaded there if missing); skips the test where neither works."""
    data = LanguageModelingDataModule(corpus, DATA)
    try:
        for split in splits:
            if not data.path(split).is_file():
                fetch(data.files[split], data.path(split))
    except FileNotFoundError:
        pytest.skip(f"{CORPUS_NAMES[corpus]} is not in {DATA / corpus} and could not be downloaded: "
                    f"set NAOLIT_DATA_DIR to a folder holding {corpus}/")
    return DATA


@pytest.fixture(scope="session")
def ptb_data() -> Path:
    """The data folder, with Penn Treebank in it."""
    return corpus_folder("ptb", ("train", "valid", "test"))


@pytest.fixture(scope="session")
def wikitext2_data() -> Path:
    """The data folder, with WikiText-2's valid and test splits in it (the tests train on valid)."""
    return corpus_folder("wikitext2", ("valid", "test"))
