"""The ops of the CNN cell spaces, DARTS-style: one table from op name to ``constructor(C, stride, affine)``.

Every op maps C channels to C channels; ``stride`` 2 halves the height and width (a reduction cell's
branches on the cell inputs). The fixed network (``naolit.models.cnn``) and the supernet
(``naolit.supernets.cnn``) build their branches from this one table.

Choices where the references differ:
- Pools are followed by nothing (as in the NAO and DARTS fixed networks): no BN, no 1x1 conv.
  Padding never counts: a pool takes the max or the mean of the real pixels of its window.
- 2x2 pools pad one row and column at the bottom right, as NAO does so that stride 1 keeps the size
  (NAO's zero padding does count there).
- ``identity`` with stride 2 is a FactorizedReduce (NAO, DARTS).
- ``conv_1x3_3x1`` / ``conv_1x7_7x1`` are ReLU-conv(1xk)-BN-ReLU-conv(kx1)-BN, the stride split over
  the two convs, as NAO does.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


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
    """Halve height and width without losing pixels: two strided 1x1 convs, one shifted by a pixel."""

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
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # odd rows and columns (zero-padded at the end)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class Pool(nn.Module):
    """A k x k max or average pool over the real pixels of each window (padding never counts).

    PyTorch's CPU pooling kernels are several times slower than a depthwise convolution, so the
    average is a depthwise convolution with a ones kernel divided by each window's pixel count, and
    the max, when no gradient is needed (scoring, inference), a running maximum over shifted views.
    """

    def __init__(self, kind: str, kernel_size: int, c: int, stride: int):
        super().__init__()
        if kind not in ("max", "avg"):
            raise ValueError(f"Pool: kind must be 'max' or 'avg', got {kind!r}")
        self.kind, self.k, self.stride = kind, kernel_size, stride
        self.conv_pad = kernel_size // 2 if kernel_size % 2 else 0  # even kernels pad by hand, see _pad
        if kind == "avg":
            self.register_buffer("ones", torch.ones(c, 1, kernel_size, kernel_size), persistent=False)

    def _pad(self, x: torch.Tensor, value: float) -> torch.Tensor:
        return x if self.k % 2 else F.pad(x, (0, 1, 0, 1), value=value)  # even: one at the bottom right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "avg":
            sums = F.conv2d(self._pad(x, 0.0), self.ones, stride=self.stride, padding=self.conv_pad,
                            groups=x.shape[1])
            real = self._pad(x.new_ones(1, 1, *x.shape[2:]), 0.0)
            return sums / F.conv2d(real, self.ones[:1], stride=self.stride, padding=self.conv_pad)
        if torch.is_grad_enabled() and x.requires_grad:
            return F.max_pool2d(self._pad(x, -math.inf), self.k, self.stride, padding=self.conv_pad)
        p = self.conv_pad
        return self._shifted_max(F.pad(self._pad(x, -math.inf), (p, p, p, p), value=-math.inf))

    def _shifted_max(self, padded: torch.Tensor) -> torch.Tensor:
        k, s = self.k, self.stride
        out_h, out_w = (padded.shape[2] - k) // s + 1, (padded.shape[3] - k) // s + 1
        rows = padded[:, :, 0 : s * (out_h - 1) + 1 : s]
        for i in range(1, k):
            rows = torch.maximum(rows, padded[:, :, i : i + s * (out_h - 1) + 1 : s])
        out = rows[:, :, :, 0 : s * (out_w - 1) + 1 : s]
        for j in range(1, k):
            out = torch.maximum(out, rows[:, :, :, j : j + s * (out_w - 1) + 1 : s])
        return out


def _pool(kind: str, k: int) -> Callable[[int, int, bool], nn.Module]:
    return lambda c, stride, affine: Pool(kind, k, c, stride)


OPS: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "identity": lambda c, stride, affine: nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, affine),
    "conv_1x1": lambda c, stride, affine: ReLUConvBN(c, c, 1, stride, 0, affine),
    "conv_3x3": lambda c, stride, affine: ReLUConvBN(c, c, 3, stride, 1, affine),
    "conv_1x3_3x1": lambda c, stride, affine: FactorizedConv(c, 3, stride, affine),
    "conv_1x7_7x1": lambda c, stride, affine: FactorizedConv(c, 7, stride, affine),
    "max_pool_2x2": _pool("max", 2),
    "max_pool_3x3": _pool("max", 3),
    "max_pool_5x5": _pool("max", 5),
    "avg_pool_2x2": _pool("avg", 2),
    "avg_pool_3x3": _pool("avg", 3),
    "avg_pool_5x5": _pool("avg", 5),
}


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole examples of a branch with probability ``drop_prob``, scaling the rest by 1/(1-p)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * (mask / keep)  # scale the small mask, not the big tensor
