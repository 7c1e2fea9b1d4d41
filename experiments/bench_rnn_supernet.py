"""RNN supernet speed at the reference's tiny setting, on real Penn Treebank.

    python experiments/bench_rnn_supernet.py [--data-dir DIR] [--steps 20] [--repeats 5] [--archs 32]
                                             [--threads N] [--out FILE.json] [hydra overrides]

Embedding = hidden = 64, batch 64, bptt 35 (fixed-length windows, so that every step does the same
work), the 11-node cell, PTB's 10,000-word vocabulary; otherwise the rnn_supernet config (dropouts,
TAR, SGD, clipping). Reports, as medians after a warm-up:
- seconds per supernet training step, through the Lightning Trainer (a random cell per step);
- seconds per architecture scored on one 35 x 64 validation window (``score``, ``--archs`` random
  cells per call, stacked), and the same one architecture at a time through the training code path
  (the reference's way of scoring), for comparison on the same machine at the same load.
Printed, and written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from common import DEFAULT_DATA_DIR, ROOT, load_config, median_seconds, report
from naolit.process import configure_process


class StepTimer(pl.Callback):
    """Wall time of each training step (forward, backward, clipping, SGD, logging)."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seconds.append(time.perf_counter() - self.start)


def score_one_by_one(supernet, archs, window) -> None:
    """Each cell alone through the training code path, in eval mode, then all the logits and their
    softmax: how the reference scores."""
    inputs, targets = window
    net = supernet.net.eval()
    with torch.inference_mode():
        for arch in archs:
            outputs = net.run(inputs, net.init_hidden(inputs.size(1)), supernet.nodes(arch))
            logits = F.linear(outputs.flatten(0, 1), net.embedding, net.decoder_bias)
            F.cross_entropy(logits, targets.flatten()).exp().item()
    net.train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("NAOLIT_DATA_DIR", str(DEFAULT_DATA_DIR)),
                        help="folder holding ptb/ptb.{train,valid,test}.txt(.gz)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps (after 3 warm-up steps)")
    parser.add_argument("--repeats", type=int, default=5, help="timed score calls")
    parser.add_argument("--archs", type=int, default=32, help="architectures per score call")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_rnn_supernet.json")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    cfg = load_config(["space=rnn", "data=ptb", "model=rnn_supernet", f"paths.data_dir={args.data_dir}",
                       "data.batch_size=64", "data.eval_batch_size=64", "data.variable_bptt=false",
                       "model.hidden_size=64", "model.arch_sampling=uniform", f"threads={args.threads or 'null'}",
                       *args.overrides])
    configure_process(cfg)  # as train.py does: threads, allocator
    pl.seed_everything(0, verbose=False)
    data = instantiate(cfg.data)
    data.prepare_data()
    data.setup("fit")
    supernet = instantiate(cfg.model, **data.model_kwargs())
    space = supernet.space

    timer, warm_up = StepTimer(), 3
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=warm_up + args.steps, limit_val_batches=0,
                         accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[timer])
    trainer.fit(supernet, datamodule=data)
    train_step = statistics.median(timer.seconds[warm_up:])

    window = next(iter(data.val_dataloader()))
    archs = [tuple(a) for a in space.sample(args.archs, torch.Generator().manual_seed(1)).tolist()]
    together = median_seconds(lambda: supernet.score(archs, [window]), args.repeats) / len(archs)
    alone_archs = archs[:8]
    alone = median_seconds(lambda: score_one_by_one(supernet, alone_archs, window), args.repeats) / len(alone_archs)

    result = {
        "setting": {"hidden_size": cfg.model.hidden_size, "batch_size": 64, "bptt": 35, "num_nodes": space.num_nodes,
                    "vocab_size": data.vocab_size, "archs_per_score_call": len(archs),
                    "threads": torch.get_num_threads(), "load_average_1min": os.getloadavg()[0]},
        "seconds_per_train_step": round(train_step, 4),
        "seconds_per_arch_scored": round(together, 4),
        "seconds_per_arch_scored_one_by_one": round(alone, 4),
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
