"""NASNet/ENAS-style convolutional cell space (NAO's CIFAR-10 space).

Two cells, normal then reduction. Each has inputs 0 and 1 (outputs of the cells k-2 and k-1) and
``num_nodes`` nodes; node i picks two inputs among 0..i+1 and one op for each, and sums them. Nodes
nobody uses are concatenated as the cell output. A branch is two tokens: (input + 1, op + num_nodes + 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from naolit.spaces.base import Arch, InvalidArchitecture, SearchSpace, check_cell_parameters
from naolit.spaces.draw import CellGraph, draw_cells

CELLS = ("normal", "reduce")
WS_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
NAO_OPS = (
    "identity", "conv_1x1", "conv_3x3", "conv_1x3_3x1", "conv_1x7_7x1",
    "max_pool_2x2", "max_pool_3x3", "max_pool_5x5", "avg_pool_2x2", "avg_pool_3x3", "avg_pool_5x5",
)
KNOWN_OPS = frozenset(WS_OPS + NAO_OPS)

# Published cells (normal, reduce) as per node [(input, op), (input, op)]; inputs 0, 1 = cells k-2, k-1.
# Converted from NAO's reference code, which writes a node as (input, op, input, op) with the same
# input numbering (0 = cell k-2, 1 = cell k-1, i + 2 = node i). NAONet (paper Fig. 1, CIFAR-10 2.11%):
# renqianluo/NAO, NAO/cnn/dag.py NAONet(), whose "node_1", "node_2" are our inputs 0, 1 and "node_j"
# (j >= 3) our input j - 1; the PyTorch port (renqianluo/NAO_pytorch, "NAONet-A", ops numbered 5..15
# in NAO_OPS order) agrees except reduction node 2, where it swaps the two ops' inputs.
# NAONet-WS (paper CIFAR-10 3.53%, 2.5M params): renqianluo/NAO, NAO-WS/cnn/train_final.sh fixed_arc,
# ops numbered 0..4 in WS_OPS order (the PyTorch port's "NAONet-B" is another, later NAO-WS cell).
PUBLISHED_CELLS: dict[str, tuple[list[list[tuple[int, str]]], list[list[tuple[int, str]]]]] = {
    "naonet": (
        [[(0, "conv_3x3"), (1, "avg_pool_5x5")], [(2, "conv_1x3_3x1"), (1, "conv_3x3")],
         [(0, "conv_1x1"), (1, "conv_3x3")], [(0, "conv_1x3_3x1"), (4, "conv_3x3")],
         [(1, "identity"), (0, "conv_3x3")]],
        [[(0, "conv_3x3"), (1, "avg_pool_2x2")], [(0, "conv_1x1"), (0, "avg_pool_3x3")],
         [(1, "conv_1x7_7x1"), (0, "max_pool_2x2")], [(0, "avg_pool_3x3"), (2, "conv_1x1")],
         [(1, "max_pool_3x3"), (0, "conv_3x3")]],
    ),
    "naonet_ws": (
        [[(0, "sep_conv_5x5"), (0, "identity")], [(2, "avg_pool_3x3"), (1, "max_pool_3x3")],
         [(1, "sep_conv_3x3"), (2, "sep_conv_3x3")], [(2, "max_pool_3x3"), (1, "max_pool_3x3")],
         [(1, "avg_pool_3x3"), (0, "identity")]],
        [[(1, "sep_conv_5x5"), (0, "max_pool_3x3")], [(2, "max_pool_3x3"), (2, "max_pool_3x3")],
         [(1, "sep_conv_3x3"), (0, "sep_conv_5x5")], [(0, "identity"), (2, "identity")],
         [(2, "max_pool_3x3"), (2, "max_pool_3x3")]],
    ),
}


class CNNCellSpace(SearchSpace):
    """Normal + reduction cell, ``num_nodes`` nodes of two branches each."""

    name = "cnn"
    tokens_per_step = 2

    def __init__(self, num_nodes: int = 5, ops: Sequence[str] = WS_OPS):
        self.ops = check_cell_parameters("cnn", num_nodes, "op", ops, KNOWN_OPS)
        self.num_nodes = num_nodes
        self.op_offset = num_nodes + 2  # input tokens are 1..num_nodes+1
        self.vocab_size = self.op_offset + len(self.ops)
        self.seq_len = len(CELLS) * num_nodes * 4

    # position p -> (cell, node, branch, is_op)
    def _locate(self, position: int) -> tuple[int, int, int, bool]:
        cell, rest = divmod(position, 4 * self.num_nodes)
        node, rest = divmod(rest, 4)
        branch, is_op = divmod(rest, 2)
        return cell, node, branch, bool(is_op)

    def _allowed_tokens(self) -> torch.Tensor:
        allowed = torch.zeros(self.seq_len, self.vocab_size, dtype=torch.bool)
        for position in range(self.seq_len):
            _, node, _, is_op = self._locate(position)
            if is_op:
                allowed[position, self.op_offset:] = True
            else:
                allowed[position, 1 : node + 3] = True  # inputs 0..node+1
        return allowed

    def position_name(self, position: int) -> str:
        cell, node, branch, is_op = self._locate(position)
        what = "op" if is_op else "input"
        return f"{CELLS[cell]} cell, node {node}, branch {branch} {what}"

    def _branches(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.view(batch.shape[0], len(CELLS) * self.num_nodes, 2, 2)  # (n, node, branch, token)

    def augment(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        branches = self._branches(batch)
        swap = torch.rand(branches.shape[:2], generator=generator) < 0.5
        return torch.where(swap[..., None, None], branches.flip(2), branches).reshape(batch.shape)

    def canonicalize(self, batch: torch.Tensor) -> torch.Tensor:
        branches = self._branches(batch)
        key = branches[..., 0] * self.vocab_size + branches[..., 1]  # order branches by (input, op)
        swap = key[..., 0] > key[..., 1]
        return torch.where(swap[..., None, None], branches.flip(2), branches).reshape(batch.shape)

    # ---- human form -----------------------------------------------------------------------------
    def cell_nodes(self, arch: Arch, cell: int) -> list[list[tuple[int, str]]]:
        """Cell ``cell`` (0 normal, 1 reduction) of ``arch`` as per node [(input, op name), (input, op name)]."""
        start = cell * 4 * self.num_nodes
        tokens = arch[start : start + 4 * self.num_nodes]
        return [
            [(tokens[4 * n + 2 * b] - 1, self.ops[tokens[4 * n + 2 * b + 1] - self.op_offset]) for b in range(2)]
            for n in range(self.num_nodes)
        ]

    def concat(self, nodes: list[list[tuple[int, str]]]) -> list[int]:
        """Indices (2.. = node 0..) of the nodes no other node uses: they form the cell output."""
        used = {inp for branches in nodes for inp, _ in branches}
        return [n + 2 for n in range(len(nodes)) if n + 2 not in used]

    def to_genotype(self, arch: Sequence[int]) -> dict[str, Any]:
        arch = self.validate(arch)
        genotype: dict[str, Any] = {"space": self.name, "num_nodes": self.num_nodes}
        for cell, cell_name in enumerate(CELLS):
            nodes = self.cell_nodes(arch, cell)
            genotype[cell_name] = [[[inp, op] for inp, op in branches] for branches in nodes]
            genotype[f"{cell_name}_concat"] = self.concat(nodes)
        return genotype

    def from_genotype(self, genotype: dict[str, Any]) -> Arch:
        self._check_genotype_space(genotype)
        tokens: list[int] = []
        for cell_name in CELLS:
            nodes = genotype.get(cell_name)
            if not isinstance(nodes, list) or len(nodes) != self.num_nodes:
                raise InvalidArchitecture(
                    f"genotype[{cell_name!r}] must be a list of {self.num_nodes} nodes, got {nodes!r}"
                )
            for node, branches in enumerate(nodes):
                if not isinstance(branches, list) or len(branches) != 2:
                    raise InvalidArchitecture(
                        f"genotype[{cell_name!r}] node {node} must have 2 branches [input, op], got {branches!r}"
                    )
                for inp, op in branches:
                    if op not in self.ops:
                        raise InvalidArchitecture(
                            f"genotype[{cell_name!r}] node {node}: unknown op {op!r}, expected one of {list(self.ops)}"
                        )
                    if not isinstance(inp, int) or not 0 <= inp <= node + 1:
                        raise InvalidArchitecture(
                            f"genotype[{cell_name!r}] node {node}: input {inp!r} must be an int in 0..{node + 1}"
                        )
                    tokens += [inp + 1, self.ops.index(op) + self.op_offset]
        return self.validate(tokens)

    def named_genotypes(self) -> dict[str, dict[str, Any]]:
        """The published cells (``PUBLISHED_CELLS``) whose node count and ops this space has."""
        named = {}
        for name, cells in PUBLISHED_CELLS.items():
            ops = {op for nodes in cells for branches in nodes for _, op in branches}
            if len(cells[0]) == self.num_nodes and ops <= set(self.ops):
                genotype: dict[str, Any] = {"space": self.name, "num_nodes": self.num_nodes}
                for cell_name, nodes in zip(CELLS, cells):
                    genotype[cell_name] = [[[inp, op] for inp, op in branches] for branches in nodes]
                    genotype[f"{cell_name}_concat"] = self.concat(nodes)
                named[name] = genotype
        return named

    def draw(self, arch: Sequence[int], path: str | Path) -> Path:
        arch = self.validate(arch)
        cells = []
        for cell, cell_name in enumerate(CELLS):
            nodes = self.cell_nodes(arch, cell)
            names = ["$c_{k-2}$", "$c_{k-1}$"] + [f"node {n}" for n in range(self.num_nodes)]
            cells.append(CellGraph(
                title=f"{cell_name} cell",
                inputs=names[:2],
                nodes={names[n + 2]: [(names[inp], op) for inp, op in branches] for n, branches in enumerate(nodes)},
                output="$c_{k}$",
                output_sources=[names[i] for i in self.concat(nodes)],
            ))
        return draw_cells(cells, path)
