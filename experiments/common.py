"""What the experiment scripts share: the real Hydra config, composed as train.py would see it, timing and reporting."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from naolit.io import atomic_path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data"


def load_config(overrides: list[str]) -> DictConfig:
    """The project's config with ``overrides`` (Hydra syntax), like ``python train.py overrides``."""
    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    if DEFAULT_DATA_DIR.is_dir():
        os.environ.setdefault("NAOLIT_DATA_DIR", str(DEFAULT_DATA_DIR))
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def report(result: dict, path: Path) -> None:
    """Print a benchmark's result and write it as JSON to ``path`` (atomically)."""
    text = json.dumps(result, indent=2) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    print(text, end="")
    print(f"written to {path}")


def median_seconds(fn: Callable[[], object], repeats: int, warm_ups: int = 1) -> float:
    """Median wall seconds of ``repeats`` calls of ``fn``, after ``warm_ups`` untimed ones."""
    for _ in range(warm_ups):
        fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


class StepTimer(pl.Callback):
    """Wall and CPU seconds between consecutive training batch ends (on a GPU, after its queued work)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._last: tuple[float, float] | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)
        now = (time.perf_counter(), time.process_time())
        if self._last is not None:
            self.wall.append(now[0] - self._last[0])
            self.cpu.append(now[1] - self._last[1])
        self._last = now
