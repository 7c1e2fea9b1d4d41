"""The recurrent language model of NAO's PTB space, shared by the fixed network and the supernet.

Every network of the space is the same body around a different cell: a word embedding (its matrix tied
to the softmax decoder), the highway node 0, then the nodes chosen by the architecture. Node 0 mixes
x_t and h_{t-1}: s0 = h + sigmoid(c0) * (tanh(h0) - h), [c0, h0] = [x_t, h_{t-1}] W_0; node i takes
its predecessor's state s_p: s_i = s_p + sigmoid(c) * (act(h) - s_p), [c, h] = s_p W_i; the cell
output is h_t = mean(s_1..s_N). ``naolit.models.rnn`` gives each node its own W_i (one fixed cell);
``naolit.supernets.rnn`` picks W_i from a table shared by every architecture.

Regularisation is AWD-LSTM's, as the NAO reference uses it: embedding (word) dropout removes whole
words; the input, x, hidden and output dropouts are variational (one mask per sequence, shared by
every time step); the loss adds temporal activation regularisation (TAR), tar * mean((h_t - h_{t-1})^2).
"""

from __future__ import annotations

from typing import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda h: h,
}

# One node of a cell: (predecessor, activation, weight W_i of shape (hidden, 2 * hidden)).
Node = tuple[int, Callable[[Tensor], Tensor], Tensor]


def locked_mask(like: Tensor, p: float, training: bool) -> Tensor | None:
    """A dropout mask of shape like[-2:] (batch, features), scaled by 1 / (1 - p), that every time
    step shares; None when there is nothing to drop (p == 0 or not training)."""
    if not training or p == 0:
        return None
    return like.new_empty(like.shape[-2:]).bernoulli_(1 - p).div_(1 - p)


def masked(x: Tensor, mask: Tensor | None) -> Tensor:
    """``x * mask``, or ``x`` itself without a mask."""
    return x if mask is None else x * mask


def gated(s_prev: Tensor, ch: Tensor, activation: Callable[[Tensor], Tensor], out: Tensor | None = None) -> Tensor:
    """A node's new state from its input state and its projection [c, h]: s + sigmoid(c) * (act(h) - s),
    written into ``out`` if given."""
    c, h = ch.chunk(2, dim=-1)
    return torch.lerp(s_prev, activation(h), torch.sigmoid(c), out=out)


def check_dropouts(owner: str, **dropouts: float) -> None:
    """Raise ValueError naming the first dropout probability outside [0, 1)."""
    for name, p in dropouts.items():
        if not 0 <= p < 1:
            raise ValueError(f"{owner}: {name} must be in [0, 1), got {p}")


class RecurrentLM(nn.Module):
    """Embedding, highway node 0, tied decoder and dropouts: everything but the cell's node weights.

    ``run(tokens, hidden, nodes)`` runs the cell given as ``nodes`` [(predecessor, activation,
    W_i)] over time-major ``tokens`` (seq_len, batch) from ``hidden`` (batch, hidden_size);
    ``nll(outputs, targets)`` is the decoder's cross-entropy of each target word.
    The embedding size equals ``hidden_size`` because the decoder reuses the embedding matrix.
    """

    def __init__(self, vocab_size: int, hidden_size: int, dropout_output: float, dropout_hidden: float,
                 dropout_x: float, dropout_input: float, dropout_embedding: float, init_range: float):
        super().__init__()
        if vocab_size < 2 or hidden_size < 1:
            raise ValueError(f"RNN language model: vocab_size must be >= 2 and hidden_size >= 1, "
                             f"got {vocab_size} and {hidden_size}")
        check_dropouts("RNN language model", dropout_output=dropout_output, dropout_hidden=dropout_hidden,
                       dropout_x=dropout_x, dropout_input=dropout_input, dropout_embedding=dropout_embedding)
        self.hidden_size, self.init_range = hidden_size, init_range
        self.dropout_output, self.dropout_hidden, self.dropout_x = dropout_output, dropout_hidden, dropout_x
        self.dropout_input, self.dropout_embedding = dropout_input, dropout_embedding
        self.embedding = nn.Parameter(torch.empty(vocab_size, hidden_size).uniform_(-init_range, init_range))
        self.decoder_bias = nn.Parameter(torch.zeros(vocab_size))
        # W_0 split by input: x_t's part is applied to a whole sequence at once, h_{t-1}'s step by step.
        self.w0_x = nn.Parameter(torch.empty(hidden_size, 2 * hidden_size).uniform_(-init_range, init_range))
        self.w0_h = nn.Parameter(torch.empty(hidden_size, 2 * hidden_size).uniform_(-init_range, init_range))

    def node_weight(self) -> nn.Parameter:
        """A fresh W_i (hidden, 2 * hidden), initialised like every other weight."""
        size, r = self.hidden_size, self.init_range
        return nn.Parameter(torch.empty(size, 2 * size).uniform_(-r, r))

    def embed(self, tokens: Tensor) -> Tensor:
        """Word vectors (seq_len, batch, hidden), with embedding and input dropout when training."""
        weight = self.embedding
        if self.training and self.dropout_embedding > 0:
            keep = weight.new_empty(weight.size(0), 1).bernoulli_(1 - self.dropout_embedding)
            weight = weight * keep / (1 - self.dropout_embedding)
        x = F.embedding(tokens, weight)
        return masked(x, locked_mask(x, self.dropout_input, self.training))

    def highway_inputs(self, x: Tensor) -> Tensor:
        """x_t's share of [c0, h0] for every step at once (seq_len, batch, 2 * hidden), x dropout applied."""
        return masked(x, locked_mask(x, self.dropout_x, self.training)) @ self.w0_x

    def highway(self, xw: Tensor, h: Tensor, h_mask: Tensor | None) -> Tensor:
        """s0 from x_t's share ``xw`` and h_{t-1}, hidden dropout ``h_mask`` applied where h enters W_0."""
        return gated(h, xw + masked(h, h_mask) @ self.w0_h, torch.tanh)

    def recur(self, x: Tensor, hidden: Tensor, nodes: list[Node]) -> Tensor:
        """Cell outputs h_1..h_T (seq_len, batch, hidden) from word vectors ``x`` and h_0 = ``hidden``."""
        h_mask = locked_mask(hidden, self.dropout_hidden, self.training)
        outputs, h = [], hidden
        for xw in self.highway_inputs(x).unbind(0):  # unbind: one backward op for all steps
            states = [self.highway(xw, h, h_mask)]
            for pred, activation, weight in nodes:
                s = states[pred]
                states.append(gated(s, masked(s, h_mask) @ weight, activation))
            h = torch.stack(states[1:]).mean(0)
            outputs.append(h)
        return torch.stack(outputs)

    def run(self, tokens: Tensor, hidden: Tensor, nodes: list[Node]) -> Tensor:
        """Cell outputs (seq_len, batch, hidden) of one window of ``tokens`` from the state ``hidden``."""
        return self.recur(self.embed(tokens), hidden, nodes)

    def nll(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Cross-entropy of each target word (targets.numel(),) given the cell outputs (..., hidden) (any
        leading shape matching ``targets``), with output dropout when training."""
        dropped = masked(outputs, locked_mask(outputs, self.dropout_output, self.training))
        return self.decoder_nll(dropped.reshape(-1, self.hidden_size), targets.reshape(-1))

    def decoder_nll(self, x: Tensor, targets: Tensor) -> Tensor:
        """Cross-entropy (rows,) of the tied decoder's logits ``x @ embedding.T + bias`` (x: (rows, hidden))
        against ``targets`` (rows,)."""
        return F.cross_entropy(F.linear(x, self.embedding, self.decoder_bias), targets, reduction="none")

    def init_hidden(self, batch_size: int) -> Tensor:
        """The zero state h_0 of ``batch_size`` streams."""
        return self.embedding.new_zeros(batch_size, self.hidden_size)


def lm_loss(nll: Tensor, outputs: Tensor, tar: float) -> Tensor:
    """The loss to minimise: the mean word cross-entropy ``nll`` plus TAR on the cell outputs
    (seq_len, batch, hidden), weighted by ``tar``."""
    if tar > 0 and outputs.size(0) > 1:
        return nll + tar * (outputs[1:] - outputs[:-1]).pow(2).mean()
    return nll


def start_state(hidden: Tensor | None, net: RecurrentLM, batch_size: int) -> Tensor:
    """The state a window starts from: the previous window's ``hidden``, or zeros at a stream's start
    (``hidden`` None) or when the number of streams changed."""
    if hidden is None or hidden.size(0) != batch_size:
        return net.init_hidden(batch_size)
    return hidden


def sgd_step(module: pl.LightningModule, loss: Tensor, lr: float, clip: float, seq_len: int, bptt: int) -> None:
    """One manual-optimisation SGD step on ``loss``: backward, gradient norm clipped to ``clip``, and
    the learning rate scaled by ``seq_len / bptt`` for this step, as AWD-LSTM does for its variable
    windows (a short window moves the weights less)."""
    optimizer = module.optimizers()
    optimizer.zero_grad()
    module.manual_backward(loss)
    module.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
    for group in optimizer.param_groups:
        group["lr"] = lr * seq_len / bptt
    optimizer.step()
