"""CNN supernet speed at the reference's tiny setting, plain against ``accel`` (the opt-in CPU speed-ups),
paired in one process (speed only: the images are random).

    python experiments/bench_cnn_supernet.py [--rounds 10] [--steps 20] [--archs 10] [--threads 2]
                                             [--pieces batch_norm avg_pool] [--out PATH] [hydra overrides]

The supernet of conf/model/cnn_supernet.yaml with 1 normal cell per stage (5 cells), B=5 nodes, F=8,
the auxiliary head and drop-path on; batch 32 of 32x32 images, 10 classes. Two copies with the same
weights: the plain one and one through ``naolit.accel.accelerate`` (every speed-up, or ``--pieces``).
They run in alternation (``paired_rounds``); each round, each copy
- trains ``--steps`` steps (forward, auxiliary loss, backward, gradient clipping, SGD; the round's
  architectures, drawn uniformly, are the same for both), and
- scores ``--archs`` architectures on 256 validation images (``CNNSupernet.score``, one call).
Reported: the median seconds per training step and per architecture scored for each copy, the
per-round ratios accel / plain, and the ratio for a whole search at the paper's schedule (NAO.md): each
round of the search trains on 30 epochs of 45,000 images and scores 1,000 architectures on 500 images,
costed here per image from the two medians of each copy.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from common import ROOT, load_config, paired_rounds, report
from naolit.accel import PIECES, accelerate

TINY = ["space=cnn", "model=cnn_supernet", "model.layers=1", "model.channels=8", "model.arch_sampling=uniform"]
BATCH, SCORE_IMAGES = 32, 256
SEARCH_TRAIN_IMAGES, SEARCH_SCORED_ARCHS, SEARCH_SCORE_IMAGES = 30 * 45_000, 1_000, 500  # per round, paper


def train_steps(model: pl.LightningModule, optimizer: torch.optim.Optimizer, data: list, archs: list) -> float:
    """Seconds for one training step per (batch, architecture), as ``CNNSupernet.training_step`` does it."""
    hp = model.hparams
    start = time.perf_counter()
    for (x, y), arch in zip(data, archs):
        logits, aux_logits = model.net(x, arch)
        loss = F.cross_entropy(logits, y) + hp.aux_weight * F.cross_entropy(aux_logits, y)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip)
        optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds of each copy (after one warm-up)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--archs", type=int, default=10, help="architectures scored per round")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--pieces", nargs="+", choices=sorted(PIECES), default=None, help="speed-ups (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "cnn_supernet.json")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    cfg = load_config([*TINY, *args.overrides])
    torch.set_num_threads(args.threads)
    pl.seed_everything(0, verbose=False)
    space = instantiate(cfg.space)
    plain = instantiate(cfg.model, num_classes=10)
    plain.net.drop_path_prob = cfg.model.drop_path_prob / 2  # mid-search
    models = {"plain": plain, "accel": accelerate(copy.deepcopy(plain), args.pieces)}
    optimizers = {name: model.configure_optimizers()[0][0] for name, model in models.items()}
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(BATCH, 3, 32, 32, generator=g), torch.randint(10, (BATCH,), generator=g))
            for _ in range(args.steps)]
    score_batch = (torch.randn(SCORE_IMAGES, 3, 32, 32, generator=g), torch.randint(10, (SCORE_IMAGES,), generator=g))

    def archs(count: int, round_: int, salt: int) -> list:
        generator = torch.Generator().manual_seed(1000 * salt + round_ + 1)
        return [tuple(a) for a in space.sample(count, generator).tolist()]

    def search_round(name: str):
        """One round of work for copy ``name``: its seconds per training step and per architecture scored,
        and what a round of the paper's search would cost at those speeds."""
        def run(r: int) -> dict[str, float]:
            step = train_steps(models[name], optimizers[name], data, archs(args.steps, r, 1)) / args.steps
            start = time.perf_counter()
            models[name].score(archs(args.archs, r, 2), [score_batch])
            per_arch = (time.perf_counter() - start) / args.archs
            search = (SEARCH_TRAIN_IMAGES * step / BATCH
                      + SEARCH_SCORED_ARCHS * SEARCH_SCORE_IMAGES * per_arch / SCORE_IMAGES)
            return {"train_step_seconds": step, "score_seconds_per_arch": per_arch, "search_round_seconds": search}
        return run

    measures = paired_rounds({name: search_round(name) for name in models}, args.rounds)
    result = {
        "setting": {"layers": cfg.model.layers, "channels": cfg.model.channels, "nodes": space.num_nodes,
                    "batch": BATCH, "score_images": SCORE_IMAGES, "channels_last": cfg.model.channels_last,
                    "threads": torch.get_num_threads(), "pieces": args.pieces or sorted(PIECES),
                    "rounds": args.rounds, "steps_per_round": args.steps, "archs_per_round": args.archs},
        "plain_vs_accel": measures,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
