"""The RNN language model of one fixed cell of the RNN space, for final training (mirror of
``naolit.supernets.rnn``, which holds every cell at once)."""

from __future__ import annotations

from torch import Tensor, nn

from naolit.models.rnn_cell import ACTIVATIONS, Node, RecurrentLM
from naolit.spaces import Arch, RNNCellSpace


class RNNModel(RecurrentLM):
    """``RecurrentLM`` with the cell ``arch`` of ``space``: one weight W_i per node.

    ``forward(tokens, hidden)`` returns the cell outputs (seq_len, batch, hidden) of a window, whose
    ``nll(outputs, targets)`` is the words' cross-entropy; see ``RecurrentLM`` for the body and its dropouts.
    """

    def __init__(self, space: RNNCellSpace, arch: Arch, vocab_size: int, hidden_size: int,
                 dropout_output: float, dropout_hidden: float, dropout_x: float, dropout_input: float,
                 dropout_embedding: float, init_range: float):
        super().__init__(vocab_size, hidden_size, dropout_output, dropout_hidden, dropout_x, dropout_input,
                         dropout_embedding, init_range)
        self.cell = [(pred, ACTIVATIONS[act]) for pred, act in space.to_genotype(arch)["nodes"]]
        self.node_weights = nn.ParameterList([self.node_weight() for _ in self.cell])

    def nodes(self) -> list[Node]:
        """The cell as (predecessor, activation, W_i) per node."""
        return [(pred, act, weight) for (pred, act), weight in zip(self.cell, self.node_weights)]

    def forward(self, tokens: Tensor, hidden: Tensor) -> Tensor:
        return self.run(tokens, hidden, self.nodes())
