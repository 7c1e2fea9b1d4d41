"""NAS-Bench-201 cell space: 4 nodes, 6 edges, one of 5 ops on each edge (15,625 architectures).

Tokens: op + 1 for each edge, in the official order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2), which is
the order of the official ``arch_str`` ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from naolit.spaces.base import Arch, InvalidArchitecture, SearchSpace
from naolit.spaces.draw import CellGraph, draw_cells

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to node, from node)


class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell."""

    name = "nb201"
    seq_len = len(EDGES)
    vocab_size = len(OPS) + 1
    tokens_per_step = 1

    def _allowed_tokens(self) -> torch.Tensor:
        allowed = torch.ones(self.seq_len, self.vocab_size, dtype=torch.bool)
        allowed[:, 0] = False
        return allowed

    def position_name(self, position: int) -> str:
        to, frm = EDGES[position]
        return f"edge {frm}->{to}"

    def to_arch_str(self, arch: Sequence[int]) -> str:
        """The official NAS-Bench-201 string, e.g. ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
        arch = self.validate(arch)
        groups = []
        for to in (1, 2, 3):
            groups.append("|" + "|".join(f"{OPS[arch[i] - 1]}~{frm}" for i, (t, frm) in enumerate(EDGES) if t == to) + "|")
        return "+".join(groups)

    def from_arch_str(self, arch_str: str) -> Arch:
        """Parse an official NAS-Bench-201 string; raises InvalidArchitecture naming the bad part."""
        groups = arch_str.split("+")
        if len(groups) != 3:
            raise InvalidArchitecture(f"arch_str {arch_str!r}: expected 3 '+'-separated node groups, got {len(groups)}")
        tokens = []
        for to, group in enumerate(groups, start=1):
            edges = [e for e in group.strip("|").split("|")]
            if len(edges) != to:
                raise InvalidArchitecture(f"arch_str {arch_str!r}: node {to} needs {to} edges, got {group!r}")
            for frm, edge in enumerate(edges):
                op, _, src = edge.partition("~")
                if op not in OPS:
                    raise InvalidArchitecture(f"arch_str {arch_str!r}: unknown op {op!r}, expected one of {list(OPS)}")
                if src != str(frm):
                    raise InvalidArchitecture(f"arch_str {arch_str!r}: edge {edge!r} into node {to} must come from node {frm}")
                tokens.append(OPS.index(op) + 1)
        return tuple(tokens)

    def to_genotype(self, arch: Sequence[int]) -> dict[str, Any]:
        return {"space": self.name, "arch_str": self.to_arch_str(arch)}

    def from_genotype(self, genotype: dict[str, Any]) -> Arch:
        self._check_genotype_space(genotype)
        if not isinstance(genotype.get("arch_str"), str):
            raise InvalidArchitecture(f"nb201 genotype needs a string 'arch_str', got {genotype.get('arch_str')!r}")
        return self.from_arch_str(genotype["arch_str"])

    def draw(self, arch: Sequence[int], path: str | Path) -> Path:
        arch = self.validate(arch)
        nodes: dict[str, list[tuple[str, str]]] = {"1": [], "2": [], "3": []}
        for token, (to, frm) in zip(arch, EDGES):
            if OPS[token - 1] != "none":
                nodes[str(to)].append((str(frm), OPS[token - 1]))
        cell = CellGraph(title="NAS-Bench-201 cell", inputs=["0"], nodes=nodes, output="out", output_sources=["3"])
        return draw_cells([cell], path)
