"""The fixed CIFAR network of a CNN-space architecture (NASNet/DARTS/NAO layout), for final training.

Stem (3x3 conv to ``stem_multiplier * channels``), then ``layers`` normal cells, a reduction cell,
``layers`` normal cells, a reduction cell, ``layers`` normal cells (3N+2 cells; each reduction cell
doubles the channels and halves the resolution), global average pooling and a linear classifier.
A cell preprocesses its two inputs (the outputs of cells k-2 and k-1) to C channels: a 1x1
ReLU-conv-BN, or a FactorizedReduce for input k-2 right after a reduction. Each node sums two branch
ops; in a reduction cell the branches on the cell inputs have stride 2. The nodes no other node uses
(``space.concat``) are concatenated as the cell output. The supernet (``naolit.supernets.cnn``)
mirrors this layout with shared weights.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from naolit.models.cnn_ops import OPS, FactorizedReduce, ReLUConvBN, cell_states
from naolit.modes import eval_mode
from naolit.spaces.cnn import CNNCellSpace

Nodes = list[list[tuple[int, str]]]  # per node, two (input, op name) branches; inputs 0, 1 = cell inputs


def reduction_indices(layers: int) -> tuple[int, int]:
    """Positions of the two reduction cells among the 3N+2 cells."""
    return layers, 2 * layers + 1


class Cell(nn.Module):
    """One fixed cell: preprocessing of both inputs, node sums of two ops, concatenation of ``concat``."""

    def __init__(self, nodes: Nodes, concat: Sequence[int], c_pp: int, c_p: int, c: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.inputs = [[inp for inp, _ in branches] for branches in nodes]
        self.ops = nn.ModuleList([
            nn.ModuleList([OPS[op](c, 2 if reduction and inp < 2 else 1, True) for inp, op in branches])
            for branches in nodes
        ])
        self.concat = list(concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        """The cell's output for the outputs ``s0``, ``s1`` of the two cells before it."""
        nodes = [tuple(zip(inputs, ops)) for inputs, ops in zip(self.inputs, self.ops)]
        states = cell_states([self.preprocess0(s0), self.preprocess1(s1)], nodes, drop_prob, self.training)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxHead(nn.Module):
    """The CIFAR auxiliary classifier of NASNet/DARTS/NAO; expects 8x8 inputs (32x32 images)."""

    def __init__(self, c_in: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),  # 8x8 -> 2x2
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),  # 2x2 -> 1x1
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class NASNetwork(nn.Module):
    """The 3N+2-cell CIFAR network of ``arch``; ``forward`` returns (logits, aux_logits or None).

    ``drop_path_prob`` may be changed between epochs (a schedule); it applies while training, to every
    branch but the parameter-free identity. The auxiliary head reads the output of the second reduction
    cell (2/3 of the depth) and only runs while training.
    """

    def __init__(self, space: CNNCellSpace, arch: Sequence[int], num_classes: int, layers: int, channels: int,
                 auxiliary: bool = False, drop_path_prob: float = 0.0, stem_multiplier: int = 3):
        super().__init__()
        if layers < 1 or channels < 1:
            raise ValueError(f"NASNetwork: layers and channels must be >= 1, got layers={layers}, channels={channels}")
        arch = space.validate(arch)
        self.drop_path_prob = drop_path_prob
        c = channels
        c_pp = c_p = stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(3, c_p, 3, padding=1, bias=False), nn.BatchNorm2d(c_p))
        reductions = reduction_indices(layers)
        self.aux_index = reductions[1]
        self.cells = nn.ModuleList()
        self.aux_head: AuxHead | None = None
        for i in range(3 * layers + 2):
            reduction = i in reductions
            c = 2 * c if reduction else c
            nodes = space.cell_nodes(arch, int(reduction))
            concat = space.concat(nodes)
            self.cells.append(Cell(nodes, concat, c_pp, c_p, c, reduction, reduction_prev=i - 1 in reductions))
            c_pp, c_p = c_p, len(concat) * c
            if auxiliary and i == self.aux_index:
                self.aux_head = AuxHead(c_p, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        aux_logits = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.aux_head is not None and self.training:
                aux_logits = self.aux_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits, aux_logits


def count_parameters(net: nn.Module) -> int:
    """Trainable parameters of ``net`` without its auxiliary head (the count papers report)."""
    return sum(p.numel() for name, p in net.named_parameters()
               if p.requires_grad and not name.startswith("aux_head."))


def count_flops(net: nn.Module, input_size: Sequence[int] = (3, 32, 32)) -> int:
    """FLOPs of one inference forward pass on one image of ``input_size`` (C, H, W).

    Counted by ``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products, two
    FLOPs per multiply-add (papers' "multiply-adds" are half this number); BN, ReLU and max pools are
    free, average pools count as the depthwise convolutions that compute them (a few percent).
    """
    device = next(net.parameters()).device
    with eval_mode(net), torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, *input_size, device=device))
    return counter.get_total_flops()
