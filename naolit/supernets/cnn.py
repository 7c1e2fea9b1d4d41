"""NAO-WS / ENAS weight sharing for the CNN cell space: one network holding every architecture.

The layout mirrors the fixed network (``naolit.models.cnn``): stem, ``layers`` normal cells per stage,
reduction cells between the stages, optional auxiliary head after the second reduction cell. In each
cell, every (node, input, op) triple owns its op (built from the same ``cnn_ops.OPS`` table), so an
architecture selects two of them per node and a training step runs and updates only those; the nodes
run through the same ``cell_states`` as the fixed cell's.

Shapes stay fixed whatever the architecture: the cell output is ENAS's combine, ReLU then a 1x1 conv
over the concatenated unused nodes whose weight is the matching per-node slices of one
(C, num_nodes * C) matrix, then BN, so every cell outputs C channels. That 1x1 conv plays the part of
the fixed network's 1x1 preprocessing of the next cell's inputs, so a cell input is preprocessed only
where its shape differs from the cell's (ENAS's "calibrate"): FactorizedReduce after a reduction, a 1x1
ReLU-conv-BN where the channels differ (the stem's output, the inputs of a reduction cell).
The stem and the preprocessing of its output do not depend on the architecture (``stem_states``):
``score`` computes them once per validation batch for all the architectures it scores.

BatchNorm always normalises with the batch's statistics (``track_running_stats=False``), in training
and in scoring alike: running statistics of shared weights average over many architectures and
describe none of them (ENAS and NAO-WS score with batch statistics too). So ``score`` runs the network
in eval mode (no drop-path, no auxiliary head) and changes no state.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from naolit.models.cnn import AuxHead, Nodes, reduction_indices
from naolit.models.cnn_ops import OPS, FactorizedReduce, ReLUConvBN, cell_states
from naolit.spaces import Arch
from naolit.spaces.cnn import CNNCellSpace
from naolit.supernets.base import Supernet

StemStates = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
# oneDNN's AVX2 kernel for the weight gradient of a channels-last, strided 1x1 convolution with fewer than
# 8 input channels frees memory twice or never returns (torch 2.14.1, on CPUs without AVX-512), and the
# first reduction's FactorizedReduce has ``channels`` inputs: below 8 channels the supernet stays NCHW.
CHANNELS_LAST_MIN_CHANNELS = 8


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
        self.combine_bn = nn.BatchNorm2d(c)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor, nodes: Nodes, concat: Sequence[int],
                drop_prob: float = 0.0) -> torch.Tensor:
        """The cell output for the preprocessed inputs ``x0``, ``x1`` and the cell's ``nodes``."""
        chosen = [tuple((inp, self.ops[node][inp][self.op_index[op]]) for inp, op in branches)
                  for node, branches in enumerate(nodes)]
        states = cell_states([x0, x1], chosen, drop_prob, self.training)
        unused = torch.cat([states[i] for i in concat], dim=1)
        weight = self.combine_weight[:, [i - 2 for i in concat]].flatten(1)[:, :, None, None]
        return self.combine_bn(F.conv2d(F.relu(unused), weight))


class SharedNetwork(nn.Module):
    """Stem, 3 stages of ``layers`` shared cells with shared reduction cells between, classifier."""

    def __init__(self, space: CNNCellSpace, num_classes: int, layers: int, channels: int,
                 auxiliary: bool, stem_multiplier: int):
        super().__init__()
        self.space = space
        self.drop_path_prob = 0.0
        c = channels
        c_stem = stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
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

    def stem_states(self, x: torch.Tensor) -> StemStates:
        """What no architecture changes: the stem output, preprocessed as cell 0's two inputs and as
        cell 1's first input."""
        stem = self.stem(x)
        return self.cells[0].preprocess0(stem), self.cells[0].preprocess1(stem), self.cells[1].preprocess0(stem)

    def forward_cells(self, stem_states: StemStates, arch: Arch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``forward`` from ``stem_states(x)`` on."""
        cells = self.decode(arch)
        aux_logits = None
        s0 = s1 = None  # the outputs of the last two cells
        for i, (cell, reduction) in enumerate(zip(self.cells, self.reduction)):
            x0 = stem_states[0] if i == 0 else stem_states[2] if i == 1 else cell.preprocess0(s0)
            x1 = stem_states[1] if i == 0 else cell.preprocess1(s1)
            nodes, concat = cells[reduction]
            s0, s1 = s1, cell(x0, x1, nodes, concat, self.drop_path_prob)
            if i == self.aux_index and self.aux_head is not None and self.training:
                aux_logits = self.aux_head(s1)
        return self.classifier(s1.mean(dim=(2, 3))), aux_logits


def use_batch_statistics(module: nn.Module) -> None:
    """Make every BatchNorm of ``module`` normalise with batch statistics and keep no running ones."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None


class CNNSupernet(Supernet):
    """NAO-WS's CIFAR supernet: one sampled architecture per training batch, manual optimisation.

    SGD (Nesterov momentum, L2 ``weight_decay``) with cosine annealing from ``lr_max`` to ``lr_min``
    and warm restarts every ``lr_t0`` epochs, the period growing by ``lr_t_mult`` (stepped every
    batch); gradient-norm clipping at ``grad_clip``; drop-path rising linearly over the epochs to
    ``drop_path_prob``; auxiliary loss weight ``aux_weight``.
    ``score`` is each architecture's accuracy on the first ``score_batches`` validation batches.
    ``channels_last`` keeps the weights, and so the activations, in NHWC memory layout, from
    ``CHANNELS_LAST_MIN_CHANNELS`` channels on (below, the network stays NCHW).

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
                 grad_clip: float = 5.0, score_batches: int = 1, channels_last: bool = True, seed: int = 0,
                 arch_sampling: str = "pool"):
        super().__init__(space, seed=seed, arch_sampling=arch_sampling)
        if not isinstance(space, CNNCellSpace):
            raise TypeError(f"CNNSupernet: space must be a CNNCellSpace, got {type(space).__name__}")
        unknown = [op for op in space.ops if op not in OPS]
        if unknown:
            raise ValueError(f"CNNSupernet: no op named {unknown[0]!r}, expected names from {sorted(OPS)}")
        if layers < 1 or channels < 2 or channels % 2 or score_batches < 1:
            raise ValueError(f"CNNSupernet: expected layers >= 1, even channels >= 2, score_batches >= 1, "
                             f"got layers={layers}, channels={channels}, score_batches={score_batches}")
        self.save_hyperparameters(ignore=["space"])
        self.automatic_optimization = False
        self.net = SharedNetwork(space, num_classes, layers, channels, auxiliary, stem_multiplier)
        use_batch_statistics(self.net)
        if channels_last and channels >= CHANNELS_LAST_MIN_CHANNELS:
            self.net.to(memory_format=torch.channels_last)  # convolutions then give channels-last outputs

    def forward(self, x: torch.Tensor, arch: Arch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, aux_logits or None) of architecture ``arch`` on images ``x``."""
        return self.net(x, arch)

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
        opt = torch.optim.SGD(self.parameters(), lr=hp.lr_max, momentum=hp.momentum, nesterov=True,
                              weight_decay=hp.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=hp.lr_t0, T_mult=hp.lr_t_mult,
                                                                     eta_min=hp.lr_min)
        return [opt], [sched]

    def score(self, archs: Sequence[Arch], batches: Iterable[Any] | None = None) -> list[float]:
        """Accuracy of each architecture on ``batches`` of (images, labels), by default the first
        ``score_batches`` validation batches. Each batch goes to the device and through the
        (architecture-independent) stem once, then through the cells of every architecture."""
        if not archs:
            return []
        batches = self.validation_batches(self.hparams.score_batches) if batches is None else list(batches)
        correct = torch.zeros(len(archs), dtype=torch.long, device=self.device)
        total = 0
        with self.scoring():
            for x, y in batches:
                y = y.to(self.device)
                stem_states = self.net.stem_states(x.to(self.device))
                for i, arch in enumerate(archs):
                    correct[i] += (self.net.forward_cells(stem_states, arch)[0].argmax(dim=1) == y).sum()
                total += len(y)
        return (correct.double() / total).tolist()
