"""Cross-entropy of a linear decoder over a large vocabulary, computed block by block.

The logits of a language model's window (e.g. 35 x 64 tokens x 10,000 words = 90 MB) cost more to
write, read back for the softmax and fill again for its gradient than to compute. Here they only
ever exist for ``block`` rows at a time, small enough to stay in a CPU cache, and when a gradient is
needed it is computed in the same pass (softmax - one-hot, then its two products), so that the
logits are computed once. That needs the gradient to be the same for every row, as it is for a
mean or a sum of the values. The bias rides along as one more input feature (x gets a column of
ones, the weight a row of biases): one product gives the logits, one the weight's and bias's
gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# Logits per block on a CPU (4 MB of float32; measured best on a 2 MB-L2 Xeon). Speed only: results are equal.
LOGITS_PER_BLOCK = 2**20
# When no logit can exceed this in size, exp needs no shift by the row maximum: e^60 times any vocabulary
# stays far below float32's largest number and e^-60 far above its smallest, and a pass is saved.
UNSHIFTED_LOGIT_BOUND = 60.0


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, targets: Tensor, block: int, needs_grad: bool) -> Tensor:
        rows, features = x.shape
        x1 = torch.cat([x, x.new_ones(rows, 1)], dim=1)  # (rows, features + 1)
        w1 = torch.cat([weight.t(), bias[None]])  # (features + 1, classes)
        grad_x1 = torch.empty_like(x1) if needs_grad else None
        grad_w1 = torch.zeros_like(w1) if needs_grad else None
        nll = x.new_empty(rows)
        # |logit| <= |x1 row| |w1 column| (Cauchy-Schwarz): a bound for all the logits at once.
        shift = bool(x1.norm(dim=1).max() * w1.norm(dim=0).max() > UNSHIFTED_LOGIT_BOUND)
        for start in range(0, rows, block):
            part = slice(start, start + block)
            logits = x1[part] @ w1
            picked = torch.arange(logits.size(0), device=x.device), targets[part]
            nll[part] = -logits[picked]
            if shift:
                top = logits.amax(1, keepdim=True)
                nll[part] += top.squeeze(1)
                logits.sub_(top)
            exp = logits.exp_()  # in place: the logits are not needed any more
            sums = exp.sum(1, keepdim=True)
            nll[part] += sums.log().squeeze(1)
            if needs_grad:  # d nll / d logits = softmax - one-hot(target)
                grad_logits = exp.div_(sums)
                grad_logits[picked] -= 1
                torch.mm(grad_logits, w1.t(), out=grad_x1[part])
                grad_w1.addmm_(x1[part].t(), grad_logits)
        ctx.save_for_backward(grad_x1, grad_w1)
        ctx.features = features
        return nll

    @staticmethod
    def backward(ctx, grad_nll: Tensor) -> tuple[Tensor, Tensor, Tensor, None, None, None]:
        grad_x1, grad_w1 = ctx.saved_tensors
        scale = grad_nll[0]
        if not torch.equal(grad_nll, scale.expand_as(grad_nll)):
            raise RuntimeError("linear_cross_entropy: the rows' gradients differ; differentiate the mean or the "
                               "sum of its values, or use F.cross_entropy for other weightings")
        grad_x = grad_x1[:, : ctx.features] * scale
        grad_weight = (grad_w1[: ctx.features].t() * scale).contiguous()
        return grad_x, grad_weight, grad_w1[ctx.features] * scale, None, None, None


def linear_cross_entropy(x: Tensor, weight: Tensor, bias: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of each row (rows,) of the logits ``x @ weight.T + bias`` against ``targets``
    (rows,), for ``x`` (rows, features), ``weight`` (classes, features), ``bias`` (classes,).
    Equal to ``F.cross_entropy(F.linear(x, weight, bias), targets, reduction="none")`` without ever
    holding all the logits; differentiable in ``x``, ``weight`` and ``bias`` through its mean or sum."""
    block = max(1, LOGITS_PER_BLOCK // weight.size(0))
    # Decided here: inside forward, autograd is always off (and ctx.needs_input_grad ignores no_grad).
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, weight, bias))
    return _LinearCrossEntropy.apply(x, weight, bias, targets, block, needs_grad)


class BlockwiseDecoderLoss(nn.Module):
    """Mixin for ``naolit.models.rnn_cell.RecurrentLM``: the tied decoder's cross-entropy through
    ``linear_cross_entropy`` on the CPU (elsewhere the language model's own)."""

    def decoder_nll(self, x: Tensor, targets: Tensor) -> Tensor:
        if not x.is_cpu:
            return super().decoder_nll(x, targets)
        return linear_cross_entropy(x, self.embedding, self.decoder_bias, targets)
