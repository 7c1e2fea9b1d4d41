"""ENAS/DARTS-style recurrent cell space (NAO's Penn Treebank space).

Node 0 mixes x_t and h_{t-1} with a fixed tanh highway. Each node i = 1..num_nodes picks one
predecessor p < i and one activation: s_i = s_p + sigmoid(c) * (act(h) - s_p), [c, h] = s_p W_i.
The cell output is the mean of s_1..s_N. Tokens per node: (p + 1, activation + num_nodes + 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from naolit.spaces.base import Arch, InvalidArchitecture, SearchSpace, check_cell_parameters
from naolit.spaces.draw import CellGraph, draw_cells

ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")

# Published cells, [predecessor, activation] per node, converted from the NAO reference code
# (renqianluo/NAO), whose final-training scripts write a cell as "pred act pred act ..." with pred as ours.
# nao_ptb (paper: PTB test ppl 56.0): NAO/rnn/train_ptb_final.sh (also train_wt2_final.sh, WikiText-2 67.0).
#   Activations are numbered by NAO/rnn/utils.py parse_arch: 0 tanh, 1 relu, 2 identity, 3 sigmoid.
# nao_ws_ptb (paper: PTB test ppl 56.6): NAO-WS/rnn/train_final.sh. Activations are numbered by
#   NAO-WS/rnn/model.py (NAOCell) and utils.py: 0 tanh, 1 relu, 2 sigmoid, 3 identity.
# The paper's appendix figures were not checked against these strings; they are the cells the reference
# code trains in its final-training scripts.
PUBLISHED_CELLS: dict[str, list[list[Any]]] = {
    "nao_ptb": [[0, "relu"], [0, "relu"], [1, "relu"], [3, "tanh"], [4, "relu"], [4, "relu"], [5, "relu"],
                [1, "relu"], [7, "relu"], [1, "relu"], [1, "identity"]],
    "nao_ws_ptb": [[0, "relu"], [1, "relu"], [2, "sigmoid"], [1, "sigmoid"], [4, "relu"], [4, "relu"],
                   [4, "relu"], [7, "relu"], [8, "sigmoid"], [1, "tanh"], [4, "relu"]],
}


class RNNCellSpace(SearchSpace):
    """``num_nodes`` nodes after the highway node 0, each (predecessor, activation)."""

    name = "rnn"
    tokens_per_step = 2

    def __init__(self, num_nodes: int = 11, activations: Sequence[str] = ACTIVATIONS):
        self.activations = check_cell_parameters("rnn", num_nodes, "activation", activations, ACTIVATIONS)
        self.num_nodes = num_nodes
        self.act_offset = num_nodes + 1  # predecessor tokens are 1..num_nodes
        self.vocab_size = self.act_offset + len(self.activations)
        self.seq_len = 2 * num_nodes

    def _allowed_tokens(self) -> torch.Tensor:
        allowed = torch.zeros(self.seq_len, self.vocab_size, dtype=torch.bool)
        for node in range(1, self.num_nodes + 1):
            allowed[2 * (node - 1), 1 : node + 1] = True  # predecessors 0..node-1
            allowed[2 * (node - 1) + 1, self.act_offset :] = True
        return allowed

    def position_name(self, position: int) -> str:
        node, is_act = divmod(position, 2)
        return f"node {node + 1} " + ("activation" if is_act else "predecessor")

    def _nodes(self, arch: Arch) -> list[tuple[int, str]]:
        return [(arch[2 * i] - 1, self.activations[arch[2 * i + 1] - self.act_offset]) for i in range(self.num_nodes)]

    def to_genotype(self, arch: Sequence[int]) -> dict[str, Any]:
        arch = self.validate(arch)
        return {"space": self.name, "nodes": [[pred, act] for pred, act in self._nodes(arch)]}

    def from_genotype(self, genotype: dict[str, Any]) -> Arch:
        self._check_genotype_space(genotype)
        nodes = genotype.get("nodes")
        if not isinstance(nodes, list) or len(nodes) != self.num_nodes:
            raise InvalidArchitecture(f"genotype['nodes'] must list {self.num_nodes} [predecessor, activation] pairs, got {nodes!r}")
        tokens: list[int] = []
        for node, entry in enumerate(nodes, start=1):
            if not isinstance(entry, list) or len(entry) != 2:
                raise InvalidArchitecture(f"node {node}: expected [predecessor, activation], got {entry!r}")
            pred, act = entry
            if act not in self.activations:
                raise InvalidArchitecture(f"node {node}: unknown activation {act!r}, expected one of {list(self.activations)}")
            if not isinstance(pred, int) or not 0 <= pred < node:
                raise InvalidArchitecture(f"node {node}: predecessor {pred!r} must be an int in 0..{node - 1}")
            tokens += [pred + 1, self.activations.index(act) + self.act_offset]
        return self.validate(tokens)

    def named_genotypes(self) -> dict[str, dict[str, Any]]:
        """The published cells (``PUBLISHED_CELLS``) whose node count and activations this space has."""
        return {name: {"space": self.name, "nodes": [list(node) for node in nodes]}
                for name, nodes in PUBLISHED_CELLS.items()
                if len(nodes) == self.num_nodes and {act for _, act in nodes} <= set(self.activations)}

    def draw(self, arch: Sequence[int], path: str | Path) -> Path:
        nodes = self._nodes(self.validate(arch))
        cell = CellGraph(
            title="recurrent cell",
            inputs=["$x_t, h_{t-1}$"],
            nodes={"0": [("$x_t, h_{t-1}$", "tanh")]} | {str(i): [(str(p), act)] for i, (p, act) in enumerate(nodes, 1)},
            output="$h_t$ (mean)",
            output_sources=[str(i) for i in range(1, self.num_nodes + 1)],
        )
        return draw_cells([cell], path)
