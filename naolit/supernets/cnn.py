"""NAO-WS / ENAS weight sharing for the CNN cell space: one network holding every architecture.

The layout mirrors the fixed network (``naolit.models.cnn``): stem, ``layers`` normal cells per stage,
reduction cells between the stages, optional auxiliary head after the second reduction cell. In each
cell, every (node, input, op) triple owns its op (built from the same ``cnn_ops.OPS`` table), so an
architecture selects two of them per node and a training step runs and updates only those.

Shapes stay fixed whatever the architecture: the cell output is ENAS's combine, ReLU then a 1x1 conv
over the concatenated unused nodes whose weight is the matching per-node slices of one
(C, num_nodes * C) matrix, then BN, so every cell outputs C channels. That 1x1 conv plays the part of
the fixed network's 1x1 preprocessing of the next cell's inputs, so a cell input is preprocessed only
where its shape differs from the cell's (ENAS's "calibrate"): FactorizedReduce after a reduction, a 1x1
ReLU-conv-BN where the channels differ (the stem's output, the inputs of a reduction cell).
The stem and the preprocessing of its output do not depend on the architecture (``stem_states``):
``score`` computes them once per validation batch. Neither do the branches on them (cell 0's two
inputs, cell 1's first): ``score`` keeps their outputs in a ``BranchCache`` while it scores the
architectures on that batch, so each is computed once, not once per architecture using it.

BatchNorm always normalises with the batch's statistics (``track_running_stats=False``), in training
and in scoring alike: running statistics of shared weights average over many architectures and
describe none of them (ENAS and NAO-WS score with batch statistics too). So ``score`` runs the network
in eval mode (no drop-path, no auxiliary head) and changes no state.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from functools import partial
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from pytorch_lightning.plugins.precision import MixedPrecision
from torch import nn

from naolit.models.batch_norm import BatchNorm2d
from naolit.models.cnn import AuxHead, Nodes, reduction_indices
from naolit.models.cnn_ops import (OPS, CellState, FactorizedReduce, ReLUConvBN, preprocess, run_branch,
                                   run_on, sum_conv1x1_batch_norm)
from naolit.spaces import Arch
from naolit.spaces.cnn import CNNCellSpace
from naolit.supernets.base import Supernet
from naolit.supernets.parallel_scoring import map_in_inference_mode, scoring_workers, threads_per_worker


class BranchCache:
    """Branch outputs kept across the architectures scored on one batch, up to ``max_bytes`` in all
    (later ones are computed every time). Only for branches whose input no architecture changes.

    Scoring threads share it: a branch asked for while another thread computes it is waited for,
    not computed twice."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.outputs: dict[tuple, Future] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The output stored under ``key``, computed (and stored, while it fits) the first time."""
        with self._lock:
            pending = self.outputs.get(key)
            computes_here = pending is None
            if computes_here:
                pending = self.outputs[key] = Future()
        if not computes_here:
            return pending.result()
        try:
            out = compute()
        except BaseException as error:
            with self._lock:
                del self.outputs[key]
            pending.set_exception(error)
            raise
        size = out.numel() * out.element_size()
        with self._lock:
            if self.bytes + size <= self.max_bytes:
                self.bytes += size
            else:  # does not fit: whoever waits for it gets it, later callers compute it again
                del self.outputs[key]
        pending.set_result(out)
        return out


class SharedCell(nn.Module):
    """A cell with an op for every (node, input, op name); ``forward`` runs the ``nodes`` it is given.

    The network applies ``preprocess0`` / ``preprocess1`` to the cell inputs before ``forward``.
    """

    def __init__(self, space: CNNCellSpace, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.preprocess0 = (FactorizedReduce(c_pp, c) if reduction_prev
                            else ReLUConvBN(c_pp, c, 1, 1, 0) if c_pp != c else nn.Identity())
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0) if c_p != c else nn.Identity()
        self.op_index = {op: i for i, op in enumerate(space.ops)}
        self.ops = nn.ModuleList([  # ops[node][input][op]
            nn.ModuleList([
                nn.ModuleList([OPS[op](c, 2 if reduction and inp < 2 else 1, True) for op in space.ops])
                for inp in range(node + 2)
            ])
            for node in range(space.num_nodes)
        ])
        self.combine_weight = nn.Parameter(torch.empty(c, space.num_nodes, c))
        nn.init.kaiming_uniform_(self.combine_weight.view(c, -1), a=5 ** 0.5)  # nn.Conv2d's default init
        self.combine_bn = BatchNorm2d(c)

    def forward(self, x0: CellState, x1: CellState, nodes: Nodes, concat: Sequence[int],
                drop_prob: float = 0.0, cache: BranchCache | None = None,
                fixed_inputs: Sequence[int] = ()) -> torch.Tensor:
        """The cell output for the preprocessed inputs ``x0``, ``x1`` and the cell's ``nodes``.
        Branches on the ``fixed_inputs`` (0: ``x0``, 1: ``x1``) go through ``cache``, if given."""
        states = [x0, x1]

        def branch(node: int, inp: int, op_name: str) -> torch.Tensor:
            op = self.ops[node][inp][self.op_index[op_name]]
            compute = partial(run_branch, op, states[inp], drop_prob, self.training)
            if cache is None or inp not in fixed_inputs or isinstance(op, nn.Identity):
                return compute()
            return cache.get((self, node, inp, op_name), compute)

        for node, ((in_a, op_a), (in_b, op_b)) in enumerate(nodes):
            state = branch(node, in_a, op_a) + branch(node, in_b, op_b)
            # the combine is all that reads an unused node, after its ReLU: apply it in place, now
            states.append(CellState(state.relu_() if node + 2 in concat else state))
        weights = [self.combine_weight[:, i - 2, :, None, None] for i in concat]
        return sum_conv1x1_batch_norm([states[i].value for i in concat], weights, self.combine_bn)


class SharedNetwork(nn.Module):
    """Stem, 3 stages of ``layers`` shared cells with shared reduction cells between, classifier."""

    def __init__(self, space: CNNCellSpace, num_classes: int, layers: int, channels: int,
                 auxiliary: bool, stem_multiplier: int):
        super().__init__()
        self.space = space
        self.drop_path_prob = 0.0
        self.memory_format = torch.contiguous_format
        c = channels
        c_stem = stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), BatchNorm2d(c_stem))
        reductions = reduction_indices(layers)
        self.aux_index = reductions[1]
        self.reduction = [i in reductions for i in range(3 * layers + 2)]
        self.cells = nn.ModuleList()
        self.aux_head: AuxHead | None = None
        c_pp, c_p = c_stem, c_stem
        for i, reduction in enumerate(self.reduction):
            c = 2 * c if reduction else c
            self.cells.append(SharedCell(space, c_pp, c_p, c, reduction, reduction_prev=i - 1 in reductions))
            c_pp, c_p = c_p, c
            if auxiliary and i == self.aux_index:
                self.aux_head = AuxHead(c, num_classes)
        self.classifier = nn.Linear(c_p, num_classes)

    def decode(self, arch: Arch) -> list[tuple[Nodes, list[int]]]:
        """(nodes, concat) of the normal and the reduction cell of ``arch``."""
        cells = [self.space.cell_nodes(arch, cell) for cell in (0, 1)]
        return [(nodes, self.space.concat(nodes)) for nodes in cells]

    def forward(self, x: torch.Tensor, arch: Arch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, aux_logits or None) of ``arch`` on images ``x``."""
        return self.forward_cells(self.stem_states(x), arch)

    def stem_states(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What no architecture changes: the preprocessed stem output as cell 0's two inputs and
        as cell 1's first input."""
        stem = CellState(self.stem(x.contiguous(memory_format=self.memory_format)))
        return tuple(run_on(op, stem) for op in (self.cells[0].preprocess0, self.cells[0].preprocess1,
                                                 self.cells[1].preprocess0))

    def forward_cells(self, stem_states: tuple[torch.Tensor, torch.Tensor, torch.Tensor], arch: Arch,
                      cache: BranchCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``forward`` from ``stem_states(x)`` on; ``cache`` keeps the outputs of the branches on the
        stem states (cell 0's inputs, cell 1's first) for other architectures on the same images."""
        cells = self.decode(arch)
        # the ReLUs of the stem states, like the branches on them, are kept in the cache for other architectures
        fixed = [CellState(x, None if cache is None else partial(cache.get, ("relu", k), partial(torch.relu, x)))
                 for k, x in enumerate(stem_states)]
        aux_logits = None
        s0 = s1 = None  # the outputs of the last two cells: each cell output is preprocessed by the next two
        for i, (cell, reduction) in enumerate(zip(self.cells, self.reduction)):
            x0 = fixed[0] if i == 0 else fixed[2] if i == 1 else preprocess(cell.preprocess0, s0)
            x1 = fixed[1] if i == 0 else preprocess(cell.preprocess1, s1)
            nodes, concat = cells[reduction]
            fixed_inputs = (0, 1) if i == 0 else (0,) if i == 1 else ()
            s0, s1 = s1, CellState(cell(x0, x1, nodes, concat, self.drop_path_prob, cache, fixed_inputs))
            if i == self.aux_index and self.aux_head is not None and self.training:
                aux_logits = self.aux_head(s1.value)
        return self.classifier(s1.value.mean(dim=(2, 3))), aux_logits


def use_batch_statistics(module: nn.Module) -> None:
    """Make every BatchNorm of ``module`` normalise with batch statistics and keep no running ones."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None


FUSED_SGD_DEVICES = ("cpu", "cuda")  # where torch's SGD has a fused kernel


def start_momentum_at_zero(opt: torch.optim.Optimizer) -> None:
    """Give every parameter of ``opt``'s fused groups a zero momentum buffer where it has none.

    Fused SGD's step needs a momentum buffer for every parameter it updates or for none, and each
    supernet step updates the ops of another architecture. A zero buffer makes SGD's first update of
    a parameter all the same (its buffer becomes a copy of the gradient)."""
    for group in opt.param_groups:
        for param in group["params"] if group.get("fused") else ():
            if "momentum_buffer" not in opt.state[param]:
                opt.state[param]["momentum_buffer"] = torch.zeros_like(param)


class CNNSupernet(Supernet):
    """NAO-WS's CIFAR supernet: one sampled architecture per training batch, manual optimisation.

    SGD (Nesterov momentum, L2 ``weight_decay``) with cosine annealing from ``lr_max`` to ``lr_min``
    and warm restarts every ``lr_t0`` epochs, the period growing by ``lr_t_mult`` (stepped every
    batch); gradient-norm clipping at ``grad_clip``; drop-path rising linearly over the epochs to
    ``drop_path_prob``; auxiliary loss weight ``aux_weight``.
    ``score`` is each architecture's accuracy on the first ``score_batches`` validation batches; it
    keeps up to ``score_cache_mb`` MiB of branch outputs that several architectures share (``BranchCache``),
    and on the CPU scores ``score_workers`` architectures at once (None: one per torch CPU thread, at most 4).

    Weights of ops the step's architecture does not use get no gradient (``None``), so SGD leaves them,
    their momentum and their weight decay alone. Under DDP (``ddp_find_unused_parameters_true``) this
    holds because every rank draws the same architecture: DDP leaves globally unused gradients untouched.
    """

    metric_name = "valid_acc"
    higher_is_better = True

    def __init__(self, space: CNNCellSpace, num_classes: int, layers: int = 2, channels: int = 20,
                 stem_multiplier: int = 3, auxiliary: bool = True, aux_weight: float = 0.4,
                 drop_path_prob: float = 0.4, lr_max: float = 0.05, lr_min: float = 0.0005,
                 lr_t0: int = 10, lr_t_mult: int = 2, momentum: float = 0.9, weight_decay: float = 1e-4,
                 grad_clip: float = 5.0, score_batches: int = 1, score_cache_mb: float = 2048.0,
                 score_workers: int | None = None, channels_last: bool = True, seed: int = 0,
                 arch_sampling: str = "pool"):
        super().__init__(space, seed=seed, arch_sampling=arch_sampling)
        if not isinstance(space, CNNCellSpace):
            raise TypeError(f"CNNSupernet: space must be a CNNCellSpace, got {type(space).__name__}")
        unknown = [op for op in space.ops if op not in OPS]
        if unknown:
            raise ValueError(f"CNNSupernet: no op named {unknown[0]!r}, expected names from {sorted(OPS)}")
        if (layers < 1 or channels < 2 or channels % 2 or score_batches < 1 or score_cache_mb < 0
                or (score_workers is not None and score_workers < 1)):
            raise ValueError(f"CNNSupernet: expected layers >= 1, even channels >= 2, score_batches >= 1, "
                             f"score_cache_mb >= 0, score_workers >= 1 or None, got layers={layers}, "
                             f"channels={channels}, score_batches={score_batches}, score_cache_mb={score_cache_mb}, "
                             f"score_workers={score_workers}")
        self.save_hyperparameters(ignore=["space"])
        self.automatic_optimization = False
        self.net = SharedNetwork(space, num_classes, layers, channels, auxiliary, stem_multiplier)
        use_batch_statistics(self.net)
        if channels_last:
            self.net.memory_format = torch.channels_last
            self.net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, arch: Arch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, aux_logits or None) of architecture ``arch`` on images ``x``."""
        return self.net(x, arch)

    def on_train_start(self) -> None:
        # after a checkpoint's optimizer state is restored, so a resumed run keeps its buffers
        for opt in self.trainer.optimizers:
            start_momentum_at_zero(opt)

    def on_train_epoch_start(self) -> None:
        max_epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        self.net.drop_path_prob = self.hparams.drop_path_prob * self.current_epoch / max_epochs

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        opt, sched = self.optimizers(), self.lr_schedulers()
        logits, aux_logits = self.net(x, self.next_train_arch())
        loss = F.cross_entropy(logits, y)
        if aux_logits is not None:
            loss = loss + self.hparams.aux_weight * F.cross_entropy(aux_logits, y)
        opt.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(opt, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
        opt.step()
        sched.step(self.current_epoch + (batch_idx + 1) / self.trainer.num_training_batches)
        acc = (logits.detach().argmax(dim=1) == y).float().mean()
        self.log_dict({"train/loss": loss.detach(), "train/acc": acc, "train/lr": opt.param_groups[0]["lr"]},
                      on_step=True, on_epoch=False, prog_bar=True, batch_size=x.shape[0])
        return loss.detach()

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        hp = self.hparams
        # one kernel per step over the used ops' tensors (fused), or else one call per op (foreach),
        # not a Python loop over them (CPU's default): fused takes 1.5 ms per step here, foreach 4.
        # Under mixed precision Lightning refuses to clip the gradients of a fused optimizer.
        mixed_precision = self._trainer is not None and isinstance(self.trainer.precision_plugin, MixedPrecision)
        fused = self.device.type in FUSED_SGD_DEVICES and not mixed_precision
        opt = torch.optim.SGD(self.parameters(), lr=hp.lr_max, momentum=hp.momentum, nesterov=True,
                              weight_decay=hp.weight_decay, foreach=not fused, fused=fused)
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=hp.lr_t0, T_mult=hp.lr_t_mult,
                                                                     eta_min=hp.lr_min)
        return [opt], [sched]

    def score(self, archs: Sequence[Arch], batches: Iterable[Any] | None = None) -> list[float]:
        """Accuracy of each architecture on ``batches`` of (images, labels), by default the first
        ``score_batches`` validation batches. Each batch goes to the device and through the
        (architecture-independent) stem once, then through the cells of every architecture, sharing
        the branches on the stem's outputs. On the CPU, ``score_workers`` architectures run at once,
        sharing torch's threads (``naolit.supernets.parallel_scoring``); the stem, which runs alone,
        keeps them all."""
        if not archs:
            return []
        batches = self.validation_batches(self.hparams.score_batches) if batches is None else list(batches)
        workers = scoring_workers(self.device, self.hparams.score_workers)
        correct = torch.zeros(len(archs), dtype=torch.long, device=self.device)
        total = 0
        with self.scoring():
            for x, y in batches:
                y = y.to(self.device)
                start = self.net.stem_states(x.to(self.device))
                cache = BranchCache(int(self.hparams.score_cache_mb * 2 ** 20))

                def correct_of(i: int) -> torch.Tensor:
                    return (self.net.forward_cells(start, archs[i], cache)[0].argmax(dim=1) == y).sum()

                with threads_per_worker(workers):
                    correct += torch.stack(map_in_inference_mode(correct_of, len(archs), workers))
                total += len(y)
        return (correct.double() / total).tolist()
