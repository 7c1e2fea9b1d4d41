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

from naolit.console import quiet_third_parties
from naolit.io import atomic_path

ROOT = Path(__file__).resolve().parents[1]
quiet_third_parties()  # from here on, the third-party notices train.py filters (any raised on import came before)


def load_config(overrides: list[str]) -> DictConfig:
    """The project's config with ``overrides`` (Hydra syntax), like ``python train.py overrides``: the data
    folder is ``NAOLIT_DATA_DIR``, else ``<repo>/data``."""
    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
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


def paired_rounds(runs: dict[str, Callable[[int], dict[str, float]]], rounds: int) -> dict[str, dict]:
    """Run the two ``runs`` (name -> fn(r) returning named measures of round r, e.g. seconds per step)
    in alternation, after one untimed round each, the order swapped every round so that drift and
    warm caches favour neither. Per measure: each run's median and the per-round ratio second / first
    (median, min, max): on a shared machine the ratio of neighbouring measurements holds where
    absolute times drift."""
    (first, second), fns = list(runs), list(runs.values())
    for fn in fns:
        fn(-1)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for r in range(rounds):
        for name in (runs if r % 2 == 0 else reversed(list(runs))):
            results[name].append(runs[name](r))
    summary = {}
    for measure in results[first][0]:
        a, b = ([round_[measure] for round_ in results[name]] for name in (first, second))
        ratios = [y / x for x, y in zip(a, b)]
        summary[measure] = {first: round(statistics.median(a), 5), second: round(statistics.median(b), 5),
                            f"ratio_{second}_to_{first}": round(statistics.median(ratios), 3),
                            "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)]}
    return summary


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
