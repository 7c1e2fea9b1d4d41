"""Embedding optimisation: move seed embeddings up the predictor's gradient and decode new architectures."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from naolit.controller.encoder import embed
from naolit.controller.module import NAOController
from naolit.modes import eval_mode
from naolit.spaces import Arch


@dataclass(frozen=True)
class Generated:
    """A new architecture, the step size eta that produced it and the row of its seed."""

    arch: Arch
    eta: float
    seed: int


def optimize_embeddings(controller: NAOController, seeds: torch.Tensor, etas: torch.Tensor,
                        per_step: bool = False) -> torch.Tensor:
    """Decode ``e + eta * df/de`` for every seed and every eta, in one batch.

    The gradient is taken once, w.r.t. each encoder step output, at the seeds' own embeddings; each
    eta is a single step of that size from the original point (NAO). With ``per_step``, each seed
    also moves along the gradient of one encoder step at a time (one branch / edge of the cell):
    a seed then leads to up to steps + 1 different architectures instead of one line of them.
    Returns (len(etas) * directions * n, seq_len) tokens: eta-major, then direction, then seed.
    """
    with eval_mode(controller):
        seeds = seeds.to(controller.device)
        with torch.no_grad():
            step_outputs = controller.encoder(seeds)
        with torch.enable_grad():
            step_outputs.requires_grad_(True)
            predicted = controller.predictor(embed(step_outputs))
            (gradient,) = torch.autograd.grad(predicted.sum(), step_outputs)
        with torch.no_grad():
            directions = gradient[None]  # (directions, n, steps, hidden)
            if per_step:
                one_step = torch.eye(gradient.shape[1], dtype=gradient.dtype, device=gradient.device)
                directions = torch.cat([directions, gradient[None] * one_step[:, None, :, None]])
            etas = etas.to(step_outputs)
            moved = step_outputs[None, None] + etas[:, None, None, None, None] * directions[None]
            moved = F.normalize(moved.flatten(0, 2), dim=-1)
            decoded = controller.decoder.decode(moved, embed(moved)).cpu()
        return decoded


def generate_new(
    controller: NAOController,
    seeds: torch.Tensor,
    num_new: int,
    seen: set[Arch],
    eta_step: float = 1.0,
    max_etas: int = 100,
    etas_per_pass: int = 8,
    per_step: bool = False,
) -> list[Generated]:
    """Up to ``num_new`` architectures, new in canonical form (not in ``seen``), from ``seeds``.

    Step sizes eta_step * 1, 2, ... are tried in passes (one batched decode each) of at most
    ``etas_per_pass`` step sizes; after the first pass, a pass takes only as many step sizes as the
    yield so far says are needed. Smaller steps win, and within a step better seeds (earlier rows).
    ``per_step``: see ``optimize_embeddings``.
    """
    if num_new < 0 or eta_step <= 0 or max_etas < 1 or etas_per_pass < 1:
        raise ValueError(f"generate_new: need num_new >= 0, eta_step > 0, max_etas >= 1, etas_per_pass >= 1, "
                         f"got {num_new}, {eta_step}, {max_etas}, {etas_per_pass}")
    space = controller.space
    found: dict[Arch, Generated] = {}
    next_eta, pass_size = 1, etas_per_pass
    while len(found) < num_new and next_eta <= max_etas:
        etas = eta_step * torch.arange(next_eta, min(next_eta + pass_size, max_etas + 1), dtype=torch.float)
        next_eta += len(etas)
        decoded = optimize_embeddings(controller, seeds, etas, per_step)
        rows_per_eta = len(decoded) // len(etas)
        for row, (arch, key) in enumerate(zip(decoded.tolist(), space.canonicalize(decoded).tolist())):
            key = tuple(key)
            if key not in seen and key not in found:
                found[key] = Generated(tuple(arch), etas[row // rows_per_eta].item(), row % len(seeds))
                if len(found) == num_new:
                    break
        per_eta = len(found) / (next_eta - 1)  # new architectures per step size so far
        pass_size = min(etas_per_pass, math.ceil(1.25 * (num_new - len(found)) / per_eta)) if per_eta else etas_per_pass
    return list(found.values())
