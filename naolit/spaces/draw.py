"""PNG pictures of cells: a small DAG renderer on matplotlib (no graphviz binary needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@dataclass
class CellGraph:
    """One cell to draw: named input nodes, computed nodes with labelled in-edges, one output."""

    title: str
    inputs: list[str]
    nodes: dict[str, list[tuple[str, str]]]  # node name -> [(source node, edge label), ...]
    output: str = "out"
    output_sources: list[str] = field(default_factory=list)


def _layout(cell: CellGraph) -> dict[str, tuple[float, float]]:
    """Place inputs in column 0, each node one column right of its deepest source, output last."""
    column = {name: 0 for name in cell.inputs}
    for name, edges in cell.nodes.items():
        column[name] = 1 + max((column[src] for src, _ in edges), default=0)
    column[cell.output] = 1 + max(column.values())
    by_column: dict[int, list[str]] = {}
    for name, col in column.items():
        by_column.setdefault(col, []).append(name)
    positions = {}
    for col, names in by_column.items():
        for row, name in enumerate(names):
            positions[name] = (col * 2.2, (len(names) - 1) / 2 - row)
    return positions


def _draw_cell(ax, cell: CellGraph) -> None:
    pos = _layout(cell)
    edges = [(src, dst, label) for dst, ins in cell.nodes.items() for src, label in ins]
    edges += [(src, cell.output, "") for src in cell.output_sources]
    for i, (src, dst, label) in enumerate(edges):
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        bend = 0.25 if sum(1 for s, d, _ in edges[:i] if (s, d) == (src, dst)) else 0.08
        ax.annotate(
            "", xy=(x1, y1), xytext=(x0, y0),
            arrowprops=dict(arrowstyle="-|>", color="0.35", shrinkA=14, shrinkB=14,
                            connectionstyle=f"arc3,rad={bend}"),
        )
        if label:
            t = 0.45 if bend < 0.2 else 0.55
            ax.text(x0 + t * (x1 - x0), y0 + t * (y1 - y0) + (0.12 if bend > 0.2 else 0), label,
                    fontsize=7, ha="center", va="center", color="tab:blue",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
    for name, (x, y) in pos.items():
        colour = "#d9ead3" if name in cell.inputs else "#fce5cd" if name == cell.output else "#cfe2f3"
        ax.text(x, y, name, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.4", fc=colour, ec="0.3"))
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1, max(xs) + 1)
    ax.set_ylim(min(ys) - 1, max(ys) + 1)
    ax.set_title(cell.title)
    ax.axis("off")


def draw_cells(cells: list[CellGraph], path: str | Path) -> Path:
    """Draw the cells side by side into one PNG; returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    widths = [2 + 2.2 * len(cell.nodes) for cell in cells]
    fig, axes = plt.subplots(1, len(cells), figsize=(sum(widths), 4.5), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, cell in zip(axes[0], cells):
        _draw_cell(ax, cell)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
