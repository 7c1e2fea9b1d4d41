"""CNN supernet speed at the reference's tiny setting (speed only: the images are random).

    python experiments/bench_cnn_supernet.py [--steps 40] [--archs 10 100] [--threads 1] [--out PATH] [hydra overrides]

The supernet of conf/model/cnn_supernet.yaml with 1 normal cell per stage (5 cells), B=5 nodes, F=8,
the auxiliary head and drop-path on, batch 32 of 32x32 images, 10 classes. Reports
- seconds per training step through the Lightning Trainer (architecture draw, forward, backward,
  clipping, SGD, scheduler, logging, data loading: the time between consecutive batch ends),
- seconds per architecture scored on 256 validation images (one batch, ``CNNSupernet.score``), for
  each number of architectures scored together in one call (``--archs``: 10, and 100 as a search
  scoring a small pool does; architectures scored together share the branches on the stem and the
  scoring threads),
each the median after warm-up, with the CPU time of this process beside it (the wall time grows when
other processes share the cores; the load average is printed too), and the fastest scoring call (each
scores the same architectures, and noise on a shared machine only adds time). Writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, TensorDataset

from common import ROOT, StepTimer, load_config, report
from naolit.process import configure_process

TINY = ["space=cnn", "model=cnn_supernet", "model.layers=1", "model.channels=8", "model.arch_sampling=uniform"]


def time_scoring(model: pl.LightningModule, space: Any, batch: tuple, count: int, repeats: int) -> dict:
    """Wall and CPU seconds per architecture (median and fastest of ``repeats`` calls) scoring ``count``
    architectures together on ``batch``."""
    archs = [tuple(a) for a in space.sample(count, torch.Generator().manual_seed(0)).tolist()]
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        model.score(archs, [batch])
        walls.append((time.perf_counter() - wall) / count)
        cpus.append((time.process_time() - cpu) / count)
    return {"archs_together": count, "seconds_per_arch": round(statistics.median(walls), 4),
            "cpu_seconds_per_arch": round(statistics.median(cpus), 4),
            "fastest_seconds_per_arch": round(min(walls), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="training steps (the first 5 warm up)")
    parser.add_argument("--archs", type=int, nargs="+", default=[10, 100], help="architectures per scoring call")
    parser.add_argument("--repeats", type=int, default=5, help="timed scoring calls (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "cnn_supernet.json")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    cfg = load_config([*TINY, f"threads={args.threads}", *args.overrides])
    configure_process(cfg)  # as train.py does: threads, allocator
    pl.seed_everything(0, verbose=False)
    space = instantiate(cfg.space)
    model = instantiate(cfg.model, num_classes=10)
    images, labels = torch.randn(32 * args.steps, 3, 32, 32), torch.randint(10, (32 * args.steps,))
    timer = StepTimer()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, callbacks=[timer], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(images, labels), batch_size=32))
    step_wall, step_cpu = statistics.median(timer.wall[4:]), statistics.median(timer.cpu[4:])

    batch = (torch.randn(256, 3, 32, 32), torch.randint(10, (256,)))
    model.score([tuple(space.sample(1, torch.Generator().manual_seed(0))[0].tolist())], [batch])  # warm-up
    scoring = [time_scoring(model, space, batch, count, args.repeats) for count in args.archs]

    result = {
        "setting": {"layers": cfg.model.layers, "channels": cfg.model.channels, "nodes": space.num_nodes,
                    "batch": 32, "score_images": 256, "auxiliary": cfg.model.auxiliary,
                    "channels_last": cfg.model.channels_last, "threads": torch.get_num_threads(),
                    "keep_freed_memory": cfg.keep_freed_memory},
        "seconds_per_train_step": round(step_wall, 4),
        "cpu_seconds_per_train_step": round(step_cpu, 4),
        "scoring_256_images": scoring,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
