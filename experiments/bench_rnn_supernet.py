"""RNN supernet speed at the reference's tiny setting on real Penn Treebank, plain against ``accel``
(the opt-in CPU speed-ups), paired in one process.

    python experiments/bench_rnn_supernet.py [--data-dir DIR] [--rounds 10] [--steps 10] [--archs 32]
                                             [--threads 1] [--batch 64] [--device cpu] [--out FILE.json]
                                             [hydra overrides, e.g. model.hidden_size=300]

Embedding = hidden = 64, batch 64, bptt 35 (fixed-length windows, so that every step does the same
work), the 11-node cell, PTB's 10,000-word vocabulary; otherwise the rnn_supernet config (dropouts,
TAR, SGD, clipping). On a GPU (``--device cuda``) the speed-ups leave everything as it is: there the
two copies measure the same code. Two copies with the same weights, the plain one and one through
``naolit.accel.accelerate``, run in alternation (``paired_rounds``); each round, each copy
- trains ``--steps`` steps on consecutive training windows (forward, loss with TAR, backward,
  clipping, SGD; the round's cells, drawn uniformly, are the same for both), and
- scores ``--archs`` cells on one 35 x 64 validation window (``RNNSupernet.score``, cells stacked).
Reported: the median seconds per training step and per cell scored for each copy, the per-round
ratios accel / plain, and the ratio for a whole search at the paper's schedule (NAO.md): each round
trains 200 epochs of PTB's 929,589 training words and scores 1,000 cells on one 35 x 64 window,
costed per word from each copy's timings of the round.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from common import ROOT, load_config, paired_rounds, report
from naolit.accel import PIECES, accelerate
from naolit.models.rnn_cell import lm_loss

BPTT = 35
SEARCH_TRAIN_WORDS, SEARCH_SCORED_ARCHS = 200 * 929_589, 1_000  # per round, paper


def train_steps(supernet: pl.LightningModule, optimizer: torch.optim.Optimizer, windows: list, archs: list) -> float:
    """Seconds for one training step per (window, cell), as ``RNNSupernet.training_step`` does it."""
    hp, net = supernet.hparams, supernet.net
    hidden = net.init_hidden(windows[0][0].size(1))
    start = time.perf_counter()
    for (inputs, targets), arch in zip(windows, archs):
        outputs = net.run(inputs, hidden, supernet.nodes(arch))
        hidden = outputs[-1].detach()
        loss = lm_loss(net.nll(outputs, targets).mean(), outputs, hp.tar)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(supernet.parameters(), hp.clip)
        optimizer.step()
    synchronize(supernet.device)
    return time.perf_counter() - start


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a GPU's), so that wall times count it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("NAOLIT_DATA_DIR", str(ROOT / "data")),
                        help="folder holding ptb/ptb.{train,valid,test}.txt(.gz), or where to download them")
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds of each copy (after one warm-up)")
    parser.add_argument("--steps", type=int, default=10, help="training steps per round")
    parser.add_argument("--archs", type=int, default=32, help="cells scored per round")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=64, help="training and scoring streams")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda")
    parser.add_argument("--pieces", nargs="+", choices=sorted(PIECES), default=None, help="speed-ups (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "rnn_supernet.json")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    cfg = load_config(["space=rnn", "data=ptb", "model=rnn_supernet", f"paths.data_dir={args.data_dir}",
                       f"data.batch_size={args.batch}", f"data.eval_batch_size={args.batch}", "data.variable_bptt=false",
                       "model.hidden_size=64", "model.arch_sampling=uniform", *args.overrides])
    torch.set_num_threads(args.threads)
    pl.seed_everything(0, verbose=False)
    data = instantiate(cfg.data)
    data.prepare_data()
    data.setup("fit")
    plain = instantiate(cfg.model, **data.model_kwargs()).to(args.device)
    space = plain.space
    models = {"plain": plain, "accel": accelerate(copy.deepcopy(plain), args.pieces)}
    optimizers = {name: model.configure_optimizers() for name, model in models.items()}
    loader = iter(data.train_dataloader())
    windows = [tuple(t.to(args.device) for t in next(loader)) for _ in range(args.steps)]
    score_window = next(iter(data.val_dataloader()))

    def search_round(name: str):
        """One round of work for copy ``name``: its seconds per training step and per cell scored, and
        what a round of the paper's search would cost at those speeds."""
        def run(r: int) -> dict[str, float]:
            generator = torch.Generator().manual_seed(r + 1)
            archs = [tuple(a) for a in space.sample(args.steps + args.archs, generator).tolist()]
            models[name].train()
            step = train_steps(models[name], optimizers[name], windows, archs[: args.steps]) / args.steps
            start = time.perf_counter()
            models[name].score(archs[args.steps:], [score_window])
            per_arch = (time.perf_counter() - start) / args.archs
            search = SEARCH_TRAIN_WORDS * step / (args.batch * BPTT) + SEARCH_SCORED_ARCHS * per_arch
            return {"train_step_seconds": step, "score_seconds_per_arch": per_arch, "search_round_seconds": search}
        return run

    result = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else args.device,
        "setting": {"hidden_size": cfg.model.hidden_size, "batch_size": args.batch, "bptt": BPTT,
                    "num_nodes": space.num_nodes, "vocab_size": data.vocab_size, "archs_per_round": args.archs,
                    "steps_per_round": args.steps, "rounds": args.rounds, "threads": torch.get_num_threads(),
                    "pieces": args.pieces or sorted(PIECES)},
        "plain_vs_accel": paired_rounds({name: search_round(name) for name in models}, args.rounds),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
