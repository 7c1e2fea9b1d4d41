"""How good is the controller? Train it on N random NAS-Bench-201 architectures, test on 1000 others.

    python experiments/controller_quality.py                       # N=1000, default controller config
    python experiments/controller_quality.py --num-train 100 controller.fit.steps=200 controller.fit.unlabelled=200

Reports, on the held-out architectures, the predictor's Kendall tau over all of them and over the
best 10% only (by true score: how well it orders the candidates a search cares about) and its pairwise
accuracy, the decoder's exact recovery and mean Hamming distance, and the wall time per optimizer step.
For comparison, the same two Kendall taus of the other ranker NAO can choose candidates by
(`strategy.choose_by=thompson`): the posterior mean of a Gaussian process on the training architectures' tokens.
Trailing arguments are Hydra overrides of the real config (conf/).
"""

from __future__ import annotations

import argparse
import time

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from common import load_config
from naolit.benchmarks import NB201Table
from naolit.controller import fit_controller, kendall_tau, pairwise_accuracy, recovery
from naolit.controller.data import rank_normalize
from naolit.search.strategies.thompson import TokenGaussianProcess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-train", type=int, default=1000)
    parser.add_argument("--num-test", type=int, default=1000)
    parser.add_argument("--column", default="c10valid_valid_acc_200ep", help="the score to learn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. controller.fit.steps=200")
    args = parser.parse_args()

    cfg = load_config(["space=nb201", *args.overrides])
    pl.seed_everything(args.seed)
    table = NB201Table(f"{cfg.paths.data_dir}/nb201/nb201_merged_15625.csv")
    scores = table.column(args.column)
    order = torch.randperm(len(scores), generator=torch.Generator().manual_seed(args.seed))
    train, test = order[: args.num_train], order[args.num_train : args.num_train + args.num_test]

    space = instantiate(cfg.space)
    controller = instantiate(cfg.controller.model, space=space)
    fit = cfg.controller.fit
    start = time.perf_counter()
    fit_controller(controller, table.tokens[train], scores[train], steps=fit.steps, batch_size=fit.batch_size,
                   grad_clip=fit.grad_clip, normalize=fit.normalize, unlabelled=fit.unlabelled,
                   accelerator=fit.accelerator, generator=torch.Generator().manual_seed(args.seed))
    steps = fit.steps * (2 if fit.unlabelled else 1)  # the pseudo-labelled data trains as many steps again
    seconds_per_step = (time.perf_counter() - start) / steps

    predicted = controller.predict_scores(table.tokens[test])
    top = scores[test] >= scores[test].quantile(0.9)
    tau = kendall_tau(predicted, scores[test])
    top_tau = kendall_tau(predicted[top], scores[test][top])
    pair_acc = pairwise_accuracy(predicted, scores[test])
    exact, hamming = recovery(space, controller.reconstruct(table.tokens[test]), table.tokens[test])
    print(f"train={len(train)} test={len(test)} steps={fit.steps} unlabelled={fit.unlabelled} "
          f"seconds_per_step={seconds_per_step:.4f} kendall_tau={tau:.4f} top10_kendall_tau={top_tau:.4f} "
          f"pairwise_accuracy={pair_acc:.4f} recovery={exact:.4f} hamming={hamming:.4f}")

    process = TokenGaussianProcess(table.tokens[train], rank_normalize(scores[train]))
    gp_mean = process.predict(table.tokens[test])
    print(f"gaussian_process length={process.length} noise={process.noise} "
          f"kendall_tau={kendall_tau(gp_mean, scores[test]):.4f} "
          f"top10_kendall_tau={kendall_tau(gp_mean[top], scores[test][top]):.4f}")


if __name__ == "__main__":
    main()
