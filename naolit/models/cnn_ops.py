"""The ops of the CNN cell spaces, DARTS-style: one table from op name to ``constructor(C, stride, affine)``.

Every op maps C channels to C channels; ``stride`` 2 halves the height and width (a reduction cell's
branches on the cell inputs). The fixed network (``naolit.models.cnn``) and the supernet
(``naolit.supernets.cnn``) build their branches from this one table.

Choices where the references differ, following NAO:
- Pools are followed by nothing (as in the NAO and DARTS fixed networks): no BN, no 1x1 conv.
  3x3 and 5x5 pools pad by k // 2, and the padding never counts (average over the real pixels).
- 2x2 pools first pad one row and one column of zeros at the bottom right, so that stride 1 keeps
  the size; those zeros count, as in NAO.
- ``identity`` with stride 2 is a FactorizedReduce (NAO, DARTS).
- ``conv_1x3_3x1`` / ``conv_1x7_7x1`` are ReLU-conv(1xk)-BN-ReLU-conv(kx1)-BN, the stride split over
  the two convs, as NAO does.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Op = Callable[[int, int, bool], nn.Module]  # (channels, stride, affine) -> module


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution (no bias), BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int], padding: int | tuple[int, int], affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked ReLU-depthwise conv-pointwise conv-BN (DARTS); only the first is strided."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, affine: bool = True):
        padding = kernel_size // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class FactorizedConv(nn.Sequential):
    """ReLU-conv(1 x k)-BN-ReLU-conv(k x 1)-BN: a k x k receptive field at 2k weights per channel pair."""

    def __init__(self, c: int, kernel_size: int, stride: int, affine: bool = True):
        pad = kernel_size // 2
        super().__init__(
            ReLUConvBN(c, c, (1, kernel_size), (1, stride), (0, pad), affine),
            ReLUConvBN(c, c, (kernel_size, 1), (stride, 1), (pad, 0), affine),
        )


class FactorizedReduce(nn.Module):
    """Halve height and width without losing pixels: ReLU, then two strided 1x1 convs, one on the
    even pixels, one on the pixels a row and a column on (zero-padded where an odd size leaves none),
    concatenated and batch-normalised."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce: c_out must be even, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def pool(kind: str, k: int) -> Op:
    """A k x k max or average pool (see the module docstring for its padding)."""
    def build(c: int, stride: int, affine: bool) -> nn.Module:
        if k % 2:
            if kind == "max":
                return nn.MaxPool2d(k, stride, padding=k // 2)
            return nn.AvgPool2d(k, stride, padding=k // 2, count_include_pad=False)
        pooling = nn.MaxPool2d(k, stride) if kind == "max" else nn.AvgPool2d(k, stride)
        return nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), pooling)
    return build


OPS: dict[str, Op] = {
    "identity": lambda c, stride, affine: nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, affine),
    "conv_1x1": lambda c, stride, affine: ReLUConvBN(c, c, 1, stride, 0, affine),
    "conv_3x3": lambda c, stride, affine: ReLUConvBN(c, c, 3, stride, 1, affine),
    "conv_1x3_3x1": lambda c, stride, affine: FactorizedConv(c, 3, stride, affine),
    "conv_1x7_7x1": lambda c, stride, affine: FactorizedConv(c, 7, stride, affine),
    "max_pool_2x2": pool("max", 2),
    "max_pool_3x3": pool("max", 3),
    "max_pool_5x5": pool("max", 5),
    "avg_pool_2x2": pool("avg", 2),
    "avg_pool_3x3": pool("avg", 3),
    "avg_pool_5x5": pool("avg", 5),
}


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole examples of a branch with probability ``drop_prob``, scaling the rest by 1/(1-p)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * (mask / keep)


Branch = tuple[int, nn.Module]  # (input state index, op)


def cell_states(inputs: list[torch.Tensor], nodes: list[tuple[Branch, Branch]], drop_prob: float,
                training: bool) -> list[torch.Tensor]:
    """The cell's states: its ``inputs``, then each node, the sum of its two branches (an op on an
    earlier state). While ``training``, drop-path applies to every branch but the parameter-free identity.
    The fixed cell and the supernet's cells both run their nodes through this."""
    states = list(inputs)
    for branches in nodes:
        a, b = (drop_path(op(states[i]), drop_prob) if training and not isinstance(op, nn.Identity)
                else op(states[i]) for i, op in branches)
        states.append(a + b)
    return states
