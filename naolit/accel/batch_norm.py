"""Batch norm with batch statistics on the CPU, for channels-last batches with few channels.

PyTorch's channels-last CPU batch norm walks the pixels one row of C channels at a time. On several
threads, where C is not a multiple of 16, its forward and backward together run 2-4 times slower per
value than at 16 or 32 channels (``experiments/accel/bench_batch_norm.py``), and the supernet's first
stage has 8 channels at the reference's size (20 at the paper's). There, below 32 channels, when it
normalises with batch statistics and keeps no running ones (the supernet), ``PixelMatrixBatchNorm2d``
computes the statistics and the gradients as wide-view column reductions and Gram products of the
pixel matrix (``naolit.accel.pixel_matrix``): a few passes over memory that keep every vector lane
and every thread busy. On one thread, and for small batches (fewer than 8192 pixels), the native
kernel is as fast or faster and is kept.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from naolit.accel.pixel_matrix import (add_scaled_columns_, column_mean_variance, column_sums, gram, pixels,
                                        scale_and_shift_columns)

NATIVE_FAST_CHANNEL_MULTIPLE = 16  # channel counts at which the native kernel runs at full speed
MAX_CHANNELS = 32  # from here on the Gram products grow (with the square of the channels) to cost as much
MIN_PIXELS = 8192  # below this the native kernel's lower fixed cost wins
# a channel whose mean is more than 8 standard deviations from 0 loses too many digits to cancellation in
# "mean of squares minus square of mean" (float32): its variance is computed again from the centred values
CANCELLATION_LIMIT = 1 / 8 ** 2


class PixelMatrixBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters and buffers, same results up to rounding) that normalises
    float32 channels-last CPU batches with few channels through ``PixelMatrixBatchNorm`` where it keeps
    no running statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.running_mean is None and self.affine and pixel_matrix_is_faster(x):
            return PixelMatrixBatchNorm.apply(x, self.weight, self.bias, self.eps)
        return super().forward(x)


def pixel_matrix_is_faster(x: torch.Tensor) -> bool:
    """Whether ``PixelMatrixBatchNorm`` beats the native kernel on ``x`` (see the module docstring)."""
    channels = x.shape[1]
    return (x.device.type == "cpu" and torch.get_num_threads() > 1 and x.dtype == torch.float32 and x.dim() == 4
            and channels < MAX_CHANNELS and channels % NATIVE_FAST_CHANNEL_MULTIPLE != 0
            and x.numel() // channels >= MIN_PIXELS
            and x.is_contiguous(memory_format=torch.channels_last))


class PixelMatrixBatchNorm(torch.autograd.Function):
    """Batch norm with batch statistics of a channels-last ``x``, on its pixel matrix (see the module)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
        inputs = pixels(x)
        mean, variance = column_mean_variance(inputs)
        ctx.recentred = bool((variance < CANCELLATION_LIMIT * mean.square()).any())
        if ctx.recentred:
            variance = column_sums((inputs - mean).square_()) / inputs.shape[0]
        invstd = torch.rsqrt(variance + eps)
        scale = weight * invstd
        out = torch.empty_like(x, memory_format=torch.channels_last)
        scale_and_shift_columns(inputs, scale, bias - mean * scale, out=pixels(out))
        ctx.save_for_backward(x, weight, mean, invstd)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        x, weight, mean, invstd = ctx.saved_tensors
        inputs, grads = pixels(x), pixels(grad_out.contiguous(memory_format=torch.channels_last))
        rows = inputs.shape[0]
        grad_bias = column_sums(grads)
        if ctx.recentred:  # as in forward: the sum of grad * x would cancel against mean * the sum of grad
            grad_weight = invstd * gram(grads, inputs - mean).diagonal()  # sum of grad * x_hat
        else:
            grad_weight = invstd * (gram(grads, inputs).diagonal() - mean * grad_bias)
        # grad_x = weight * invstd * (grad - mean(grad) - x_hat * mean(grad * x_hat)), x_hat = (x - mean) * invstd:
        # linear in grad and in x, with one coefficient each and a constant per channel
        grad_coef = weight * invstd
        x_coef = -grad_coef * invstd * grad_weight / rows
        constant = -x_coef * mean - grad_coef * grad_bias / rows
        grad_x = torch.empty_like(x, memory_format=torch.channels_last)
        scale_and_shift_columns(grads, grad_coef, constant, out=pixels(grad_x))
        add_scaled_columns_(pixels(grad_x), inputs, x_coef)
        return grad_x, grad_weight, grad_bias, None
