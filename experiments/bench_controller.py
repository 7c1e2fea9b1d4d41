"""Controller speed at the reference CNN-cell setting (NAO.md).

    python experiments/bench_controller.py [--steps 300] [--repeats 5] [hydra overrides]

1000 random 5-op CNN-cell architectures (40 tokens, vocab 12), batch 100, embedding 48, hidden 96,
predictor 3 x 200 with dropout 0.1, branch-swap augmentation on: the default controller config.
Reports seconds per optimiser step of controller training (through the Lightning Trainer, all
overhead included) and seconds to generate 300 new unique architectures from the top 100 of the
pool with the trained controller. Scores are synthetic (share of separable convolutions + noise):
speed does not depend on them, but generation needs a predictor with a real gradient.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from common import load_config
from naolit.controller import fit_controller, generate_new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="training steps to time")
    parser.add_argument("--repeats", type=int, default=5, help="timed generations")
    parser.add_argument("--num-new", type=int, default=300)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    cfg = load_config(["space=cnn", *args.overrides])
    pl.seed_everything(0, verbose=False)
    space = instantiate(cfg.space)
    controller = instantiate(cfg.controller.model)
    archs = space.sample(1000, torch.Generator().manual_seed(0))
    is_sep_conv = (archs >= space.op_offset) & (archs < space.op_offset + 2)
    scores = is_sep_conv.float().sum(1) / (space.seq_len / 2) + 0.05 * torch.rand(1000)

    fit = cfg.controller.fit
    fit_controller(controller, archs, scores, steps=10, batch_size=fit.batch_size, grad_clip=fit.grad_clip)  # warm-up
    start = time.perf_counter()
    fit_controller(controller, archs, scores, steps=args.steps, batch_size=fit.batch_size, grad_clip=fit.grad_clip)
    step_seconds = (time.perf_counter() - start) / args.steps

    gen = dict(cfg.controller.generate)
    top = scores.argsort(descending=True)[: gen.pop("top_k")]
    seen = {space.canonical(a) for a in archs.tolist()}
    timings, counts = [], []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        generated = generate_new(controller, archs[top], args.num_new, seen, **gen)
        timings.append(time.perf_counter() - start)
        counts.append(len(generated))
    timings = timings[1:]  # the first call warms up
    largest_eta = max(g.eta for g in generated)
    print(f"threads={torch.get_num_threads()} steps={args.steps} batch={fit.batch_size} "
          f"seq_len={space.seq_len} vocab={space.vocab_size}")
    print(f"seconds_per_train_step={step_seconds:.4f} generate_{args.num_new}_seconds={statistics.median(timings):.4f} "
          f"(min {min(timings):.4f}, new found {counts[-1]}, largest eta {largest_eta:g})")


if __name__ == "__main__":
    main()
