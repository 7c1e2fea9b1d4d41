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
from functools import partial
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from naolit.models.batch_norm import BatchNorm2d
from naolit.models.pixel_matrix import column_mean_variance, column_sums, gram, pixels, scale_and_shift_columns


def conv1x1(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.conv2d(x, weight)`` for a 1x1 convolution ``weight`` of shape (out, in, 1, 1), stride 1.

    On the CPU, with the channels innermost in memory (channels-last, or a strided view of it), it is
    a matrix product of the pixels with the weight, and runs as one: oneDNN's 1x1 convolution costs
    1.6-2 times as much, forward and backward, at the supernet's sizes (8-32 channels, where its
    per-call overhead dominates). The output is channels-last.
    """
    if x.device.type != "cpu" or x.stride(1) != 1:
        return F.conv2d(x, weight)
    return F.linear(x.permute(0, 2, 3, 1), weight.reshape(weight.shape[0], -1)).permute(0, 3, 1, 2)


def conv1x1_batch_norm(x: torch.Tensor, weight: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """``bn(F.conv2d(x, weight))`` for a 1x1 convolution ``weight`` of shape (out, in, 1, 1).

    Where ``bn`` normalises with batch statistics and keeps no running ones (the supernet) and no
    gradient is needed (scoring), the normalisation is folded into the convolution: the output's
    channel means and variances follow from the input's channel sums and Gram matrix over the pixels
    (matrix products that only read ``x``), so the output is written once, already normalised,
    instead of being written, read twice by the batch norm and written again.
    """
    if not _folds(bn):
        return bn(conv1x1(x, weight))
    c_out, c_in = weight.shape[:2]
    with torch.autocast(x.device.type, enabled=False):  # statistics in float32 whatever the precision
        inputs = pixels(x).float()
        w = weight.reshape(c_out, c_in).float()
        mean = w @ column_sums(inputs) / inputs.shape[0]  # of the output channels
        mean_square = ((w @ gram(inputs)) * w).sum(dim=1) / inputs.shape[0]
        scale, shift = _normalising_affine(mean, (mean_square - mean.square()).clamp_min(0.0), bn)
    return F.conv2d(x, (w * scale[:, None]).view_as(weight).to(weight.dtype), shift.to(weight.dtype))


def sum_conv1x1_batch_norm(xs: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
                           bn: nn.BatchNorm2d) -> torch.Tensor:
    """``bn(sum of F.conv2d(x, w) over xs and weights)``: a 1x1 convolution over the channel
    concatenation of ``xs`` (the supernet's combine), then batch norm.

    Where the batch norm folds (see ``conv1x1_batch_norm``), nothing is concatenated: each input's
    product with its weight over the pixels is added into one output (concatenating channels-last
    tensors costs several times more than the products), which is then normalised in place with
    its own channel statistics.
    """
    if not _folds(bn):
        return bn(F.conv2d(torch.cat(list(xs), dim=1), torch.cat(list(weights), dim=1)))
    n, _, height, width = xs[0].shape
    out = None
    for x, weight in zip(xs, weights):
        inputs, w = pixels(x), weight.reshape(weight.shape[0], -1).T
        if out is None:
            out = inputs @ w  # in autocast's precision, if on
        else:
            out.addmm_(inputs.to(out.dtype), w.to(out.dtype))
    with torch.autocast(out.device.type, enabled=False):
        scale, shift = _normalising_affine(*column_mean_variance(out.float()), bn)
    scale_and_shift_columns(out, scale.to(out.dtype), shift.to(out.dtype), out=out)
    return out.view(n, height, width, -1).permute(0, 3, 1, 2)


def _folds(bn: nn.BatchNorm2d) -> bool:
    """Whether the batch norm after a 1x1 convolution can be folded into it: it keeps no running
    statistics and no gradient is needed."""
    return not (torch.is_grad_enabled() or bn.track_running_stats)


def _normalising_affine(mean: torch.Tensor, variance: torch.Tensor,
                        bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) that make channels of this ``mean`` and ``variance`` ``bn``'s output."""
    scale = torch.rsqrt(variance + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.float()
    shift = -scale * mean
    if bn.bias is not None:
        shift = shift + bn.bias.float()
    return scale, shift


def conv_batch_norm(x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
    """``bn(conv(x))``, through ``conv1x1_batch_norm`` where ``conv`` is a plain 1x1 convolution."""
    plain_1x1 = (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1
                 and conv.bias is None and conv.padding in ((0, 0), "valid"))
    return conv1x1_batch_norm(x, conv.weight, bn) if plain_1x1 else bn(conv(x))


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution (no bias), BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int], padding: int | tuple[int, int], affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor, relu_applied: bool = False) -> torch.Tensor:
        """The op on ``x``; ``relu_applied``: ``x`` is already the ReLU of the input (``run_on``)."""
        relu, conv, bn = self
        return conv_batch_norm(x if relu_applied else relu(x), conv, bn)


class SepConv(nn.Sequential):
    """Two stacked ReLU-depthwise conv-pointwise conv-BN (DARTS); only the first is strided."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, affine: bool = True):
        padding = kernel_size // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            BatchNorm2d(c_in, affine=affine),
            nn.ReLU(inplace=True),  # on the batch norm's fresh output, which its backward does not need
            nn.Conv2d(c_in, c_in, kernel_size, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor, relu_applied: bool = False) -> torch.Tensor:
        """The op on ``x``; ``relu_applied``: ``x`` is already the ReLU of the input (``run_on``)."""
        relu_a, depthwise_a, pointwise_a, bn_a, relu_b, depthwise_b, pointwise_b, bn_b = self
        h = conv_batch_norm(depthwise_a(x if relu_applied else relu_a(x)), pointwise_a, bn_a)
        return conv_batch_norm(depthwise_b(relu_b(h)), pointwise_b, bn_b)


class FactorizedConv(nn.Sequential):
    """ReLU-conv(1 x k)-BN-ReLU-conv(k x 1)-BN: a k x k receptive field at 2k weights per channel pair."""

    def __init__(self, c: int, kernel_size: int, stride: int, affine: bool = True):
        pad = kernel_size // 2
        super().__init__(
            ReLUConvBN(c, c, (1, kernel_size), (1, stride), (0, pad), affine),
            ReLUConvBN(c, c, (kernel_size, 1), (stride, 1), (pad, 0), affine),
        )

    def forward(self, x: torch.Tensor, relu_applied: bool = False) -> torch.Tensor:
        """The op on ``x``; ``relu_applied``: ``x`` is already the ReLU of the input (``run_on``)."""
        first, second = self
        return second(first(x, relu_applied=relu_applied))


class FactorizedReduce(nn.Module):
    """Halve height and width without losing pixels: two 1x1 convs, one on the even pixels (even rows,
    even columns), one on the pixels a row and a column on (zero where an odd size leaves none).

    The ReLU and the convolutions run on the sampled pixels only, a quarter of the input each.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce: c_out must be even, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        even = self.relu(x[:, :, ::2, ::2])
        shifted = self.relu(x[:, :, 1::2, 1::2])
        if shifted.shape != even.shape:  # F.pad copies even where it adds nothing
            shifted = F.pad(shifted, (0, even.shape[3] - shifted.shape[3], 0, even.shape[2] - shifted.shape[2]))
        if not _folds(self.bn):
            return self.bn(torch.cat([conv1x1(even, self.conv_1.weight), conv1x1(shifted, self.conv_2.weight)], dim=1))
        # each half of the output is a 1x1 convolution of one sampling: the sum of two convolutions
        # whose weights are zero on the other half, so the batch norm folds and nothing is concatenated
        zeros = torch.zeros_like(self.conv_1.weight)
        weights = [torch.cat([self.conv_1.weight, zeros]), torch.cat([zeros, self.conv_2.weight])]
        return sum_conv1x1_batch_norm([even, shifted], weights, self.bn)


class Pool(nn.Module):
    """A k x k max or average pool over the real pixels of each window (padding never counts).

    PyTorch's CPU pooling kernels are several times slower than a depthwise convolution, so the
    average is a depthwise convolution with a 1/k^2 kernel, rescaled on the border rows and columns
    whose windows hold fewer real pixels, and the max, when no gradient is needed (scoring,
    inference), a running maximum over shifted views, rows then columns, that never pads.
    """

    def __init__(self, kind: str, kernel_size: int, c: int, stride: int):
        super().__init__()
        if kind not in ("max", "avg"):
            raise ValueError(f"Pool: kind must be 'max' or 'avg', got {kind!r}")
        self.kind, self.k, self.stride = kind, kernel_size, stride
        self._scales: dict[tuple, torch.Tensor] = {}  # see _real_pixel_scale
        self.conv_pad = kernel_size // 2 if kernel_size % 2 else 0  # even kernels pad by hand, see _pad
        if kind == "avg":
            self.register_buffer("mean_kernel", torch.full((c, 1, kernel_size, kernel_size), kernel_size ** -2),
                                 persistent=False)

    def _pad(self, x: torch.Tensor, value: float) -> torch.Tensor:
        return x if self.k % 2 else F.pad(x, (0, 1, 0, 1), value=value)  # even: one at the bottom right

    def _windows(self, size: int) -> list[tuple[int, int]]:
        """The (first, last) input index of the real pixels in each output position's window along
        one dimension of ``size`` pixels."""
        out = (size + 2 * self.conv_pad + (self.k + 1) % 2 - self.k) // self.stride + 1
        starts = [i * self.stride - self.conv_pad for i in range(out)]
        return [(max(a, 0), min(a + self.k, size) - 1) for a in starts]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "avg":
            return self._average(x)
        if torch.is_grad_enabled() and x.requires_grad:
            return F.max_pool2d(self._pad(x, -math.inf), self.k, self.stride, padding=self.conv_pad)
        return self._running_max(self._running_max(x, dim=2), dim=3)

    def _average(self, x: torch.Tensor) -> torch.Tensor:
        means = F.conv2d(self._pad(x, 0.0), self.mean_kernel, stride=self.stride, padding=self.conv_pad,
                         groups=x.shape[1])
        if means.requires_grad:  # in place, autograd would copy the whole gradient once per border row and column
            return means * self._real_pixel_scale(x.shape[2], x.shape[3], means)
        for dim in (2, 3):
            for i, factor in enumerate(self._real_pixel_factors(x.shape[dim])):
                if factor != 1:
                    means.narrow(dim, i, 1).mul_(factor)
        return means

    def _real_pixel_factors(self, size: int) -> list[float]:
        """For each output position along a dimension of ``size`` pixels: k over its window's real pixels."""
        return [self.k / (last - first + 1) for first, last in self._windows(size)]

    def _real_pixel_scale(self, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
        """The factors of both dimensions as one (rows, columns) map on ``like``'s device and dtype, made once
        per input size."""
        key = (height, width, like.device, like.dtype)
        if key not in self._scales:
            rows, cols = self._real_pixel_factors(height), self._real_pixel_factors(width)
            self._scales[key] = (torch.tensor(rows)[:, None] * torch.tensor(cols)).to(like)
        return self._scales[key]

    def _running_max(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """The max over each window along ``dim``: offset 0 of every window is a real pixel, so
        start there and fold in each other offset where it falls inside."""
        windows = self._windows(x.shape[dim])
        s, n = self.stride, len(windows)
        centre = x.narrow(dim, 0, s * (n - 1) + 1)[(slice(None),) * dim + (slice(None, None, s),)]
        out = None
        for offset in range(-self.conv_pad, self.k - self.conv_pad):
            if offset == 0:
                continue
            inside = [i for i, (first, last) in enumerate(windows) if first <= i * s + offset <= last]
            if not inside:
                continue
            lo, hi = inside[0], inside[-1]
            shifted = x.narrow(dim, lo * s + offset, s * (hi - lo) + 1)[(slice(None),) * dim + (slice(None, None, s),)]
            if out is None:
                out = torch.empty_like(centre)
                torch.maximum(centre.narrow(dim, lo, hi - lo + 1), shifted, out=out.narrow(dim, lo, hi - lo + 1))
                out.narrow(dim, 0, lo).copy_(centre.narrow(dim, 0, lo))
                out.narrow(dim, hi + 1, n - hi - 1).copy_(centre.narrow(dim, hi + 1, n - hi - 1))
            else:
                target = out.narrow(dim, lo, hi - lo + 1)
                torch.maximum(target, shifted, out=target)
        return centre.clone() if out is None else out


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


RELU_FIRST_OPS = (ReLUConvBN, SepConv, FactorizedConv)  # op(x) is op(relu(x), relu_applied=True)


class CellState:
    """A tensor that several ops of a cell read (a cell input or a node), and its ReLU, computed the
    first time an op that begins with a ReLU reads it (``run_on``) and shared by the others: a state
    that feeds three such branches has its ReLU computed once, not three times.

    ``compute_relu`` returns the ReLU of ``value`` (by default ``torch.relu(value)``; the supernet's
    scoring passes one that keeps it for the other architectures)."""

    def __init__(self, value: torch.Tensor, compute_relu: Callable[[], torch.Tensor] | None = None):
        self.value = value
        self._compute_relu = compute_relu or partial(torch.relu, value)
        self._relu: torch.Tensor | None = None

    def relu(self) -> torch.Tensor:
        """The ReLU of ``value``, computed on the first call."""
        if self._relu is None:
            self._relu = self._compute_relu()
        return self._relu


def run_on(op: nn.Module, state: CellState) -> torch.Tensor:
    """``op(state.value)``, from the state's shared ReLU where ``op`` begins with one."""
    return op(state.relu(), relu_applied=True) if isinstance(op, RELU_FIRST_OPS) else op(state.value)


def preprocess(op: nn.Module, state: CellState) -> CellState:
    """The state ``op`` makes of ``state`` (``state`` itself, with its ReLU, where ``op`` is the identity)."""
    return state if isinstance(op, nn.Identity) else CellState(run_on(op, state))


def run_branch(op: nn.Module, state: CellState, drop_prob: float, training: bool) -> torch.Tensor:
    """``run_on(op, state)``, with drop-path while ``training`` on every op but the parameter-free identity."""
    h = run_on(op, state)
    return drop_path(h, drop_prob) if training and not isinstance(op, nn.Identity) else h
