"""PNG pictures of cells: a small layered DAG renderer on matplotlib (no graphviz binary needed).

Why not networkx's layouts: on these cells (a dozen nodes, one label per edge) they put edge labels over
nodes and over other edges; the steps below keep labels clear of both.

Three steps, all lengths in inches so that text measured in points tells how much room it takes:
1. nodes go into columns by depth; rows within a column are ordered to reduce crossings;
2. each edge, labelled and shortest first, picks the matplotlib ``arc3`` curvature and the spot for its
   label that keep clear of node boxes, labels and edges already placed; where a label still ends up on
   another edge, the columns around it move apart and step 2 runs again;
3. the figure is sized to what was placed, one inch per data unit, and drawn with nodes over edges.
"""

from __future__ import annotations

from bisect import bisect
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402
from matplotlib.textpath import TextPath  # noqa: E402

from naolit.io import atomic_path  # noqa: E402

NODE_FONT, LABEL_FONT, TITLE_FONT = 9, 7, 11  # points
NODE_PAD, LABEL_PAD = 0.07, 0.015  # inches of room around a node name / an edge label
ROW_GAP = 0.5  # inches between stacked node boxes
COLUMN_GAP = 0.35  # inches between node boxes in addition to the widest edge label
RADS = sorted((round(0.1 * k, 1) for k in range(-7, 8)), key=abs)  # arc3 curvatures an edge may take
LABEL_TS = (0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74)  # spots along an edge a label may take
WIDEN, WIDEN_ROUNDS = 0.25, 4  # inches added to a gap whose labels sit on crossings, at most this often
MARGIN, TITLE_ROOM, DPI = 0.15, 0.35, 110
COLOURS = {"input": "#d9ead3", "node": "#cfe2f3", "output": "#fce5cd"}


@dataclass
class CellGraph:
    """One cell to draw: named input nodes, computed nodes with labelled in-edges, one output."""

    title: str
    inputs: list[str]
    nodes: dict[str, list[tuple[str, str]]]  # node name -> [(source node, edge label), ...]
    output: str = "out"
    output_sources: list[str] = field(default_factory=list)


@dataclass
class _Placed:
    """Where everything of one cell goes, in inches; boxes are rows [x0, y0, x1, y1]."""

    nodes: dict[str, np.ndarray]
    edges: list[tuple[str, str, float]]  # (source, target, arc3 rad)
    labels: list[tuple[str, np.ndarray]]  # (text, box)
    extent: np.ndarray  # [x0, y0, x1, y1] of everything drawn


def _text_size(text: str, fontsize: float) -> tuple[float, float]:
    """Width and height in inches that ``text`` takes at ``fontsize`` points (mathtext allowed)."""
    width = TextPath((0, 0), text, size=fontsize).get_extents().width
    return width / 72, fontsize / 72


def _box(centre: np.ndarray, size: tuple[float, float], pad: float) -> np.ndarray:
    (x, y), (w, h) = centre, size
    return np.array([x - w / 2 - pad, y - h / 2 - pad, x + w / 2 + pad, y + h / 2 + pad])


def _inside(points: np.ndarray, boxes: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Per point: how many of ``boxes`` (grown by ``margin``) contain it."""
    p, b = points[:, None, :], boxes.reshape(-1, 4)[None] + np.array([-margin, -margin, margin, margin])
    hit = (p[..., 0] > b[..., 0]) & (p[..., 0] < b[..., 2]) & (p[..., 1] > b[..., 1]) & (p[..., 1] < b[..., 3])
    return hit.sum(axis=1)


def _overlaps(box: np.ndarray, boxes: np.ndarray, margin: float) -> int:
    b = boxes.reshape(-1, 4)
    return int(np.sum((box[0] < b[:, 2] + margin) & (box[2] > b[:, 0] - margin)
                      & (box[1] < b[:, 3] + margin) & (box[3] > b[:, 1] - margin)))


def _arc(p0: np.ndarray, p1: np.ndarray, rad: float, ts: np.ndarray) -> np.ndarray:
    """Points at ``ts`` of matplotlib's ``arc3,rad=rad`` curve from p0 to p1: a quadratic Bezier."""
    (dx, dy) = p1 - p0
    control = (p0 + p1) / 2 + rad * np.array([dy, -dx])
    t = ts[:, None]
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * control + t**2 * p1


def _crossings(rows: list[list[str]], edges: list[tuple[str, str, str]]) -> int:
    """Crossings if every edge were straight: pairs whose order swaps between two neighbouring columns."""
    column = {name: col for col, names in enumerate(rows) for name in names}
    y = {name: row - (len(names) - 1) / 2 for names in rows for row, name in enumerate(names)}

    def height(src: str, dst: str, col: int) -> float:
        return y[src] + (y[dst] - y[src]) * (col - column[src]) / (column[dst] - column[src])

    count = 0
    for col in range(len(rows) - 1):
        spans = [(height(s, d, col), height(s, d, col + 1)) for s, d, _ in edges if column[s] <= col < column[d]]
        count += sum((a0 - b0) * (a1 - b1) < 0 for i, (a0, a1) in enumerate(spans) for b0, b1 in spans[:i])
    return count


def _rows(cell: CellGraph, edges: list[tuple[str, str, str]]) -> list[list[str]]:
    """Nodes by column (one past the deepest source), each column ordered by the barycentre heuristic."""
    column = {name: 0 for name in cell.inputs}
    for name, ins in cell.nodes.items():
        column[name] = 1 + max((column[src] for src, _ in ins), default=0)
    column[cell.output] = 1 + max(column.values())
    rows: list[list[str]] = [[] for _ in range(column[cell.output] + 1)]
    for name, col in column.items():
        rows[col].append(name)

    def centred(name: str) -> float:
        col = rows[column[name]]
        return col.index(name) - (len(col) - 1) / 2

    sources = {name: [s for s, d, _ in edges if d == name] for name in column}
    targets = {name: [d for s, d, _ in edges if s == name] for name in column}
    best = (_crossings(rows, edges), [list(col) for col in rows])
    for _ in range(4):  # sweep right ordering by sources, then left by targets; keep the fewest crossings
        for order, neighbours in ((range(1, len(rows)), sources), (range(len(rows) - 2, -1, -1), targets)):
            for col in order:
                key = {n: np.mean([centred(m) for m in neighbours[n]]) if neighbours[n] else centred(n)
                       for n in rows[col]}
                rows[col].sort(key=key.get)
            best = min(best, (_crossings(rows, edges), [list(col) for col in rows]), key=lambda b: b[0])
    return best[1]


def _grid(rows: list[list[str]], size: dict[str, tuple[float, float]], gaps: list[float],
          ) -> tuple[dict[str, np.ndarray], dict[str, int], list[float]]:
    """Node boxes, their columns, and each column's x: rows stacked round y = 0, ``gaps`` between columns."""
    widths = [max(size[n][0] for n in col) + 2 * NODE_PAD for col in rows]
    row_step = max(h for _, h in size.values()) + 2 * NODE_PAD + ROW_GAP
    nodes, column, xs = {}, {}, [0.0]
    for col, names in enumerate(rows):
        if col:
            xs.append(xs[-1] + widths[col - 1] / 2 + gaps[col - 1] + widths[col] / 2)
        for row, name in enumerate(names):
            centre = np.array([xs[col], ((len(names) - 1) / 2 - row) * row_step])
            nodes[name], column[name] = _box(centre, size[name], NODE_PAD), col
    return nodes, column, xs


def _place(cell: CellGraph) -> _Placed:
    edges = [(src, dst, label) for dst, ins in cell.nodes.items() for src, label in ins]
    edges += [(src, cell.output, "") for src in cell.output_sources]
    rows = _rows(cell, edges)
    size = {name: _text_size(name, NODE_FONT) for col in rows for name in col}
    label_size = {label: _text_size(label, LABEL_FONT) for _, _, label in edges if label}
    gaps = [COLUMN_GAP + max((w for w, _ in label_size.values()), default=0.0)] * (len(rows) - 1)
    for _ in range(WIDEN_ROUNDS + 1):
        nodes, column, xs = _grid(rows, size, gaps)
        centre = {name: (box[:2] + box[2:]) / 2 for name, box in nodes.items()}
        routed, labels = _route(edges, centre, nodes, column, label_size)
        crowded = _crowded(routed, labels, centre, nodes)
        # a label on another edge is ambiguous: give the columns around it more room and lay out again
        for gap in {min(max(bisect(xs, x) - 1, 0), len(gaps) - 1) for x in crowded if gaps}:
            gaps[gap] += WIDEN
        if not crowded or not gaps:
            break
    curves = [_arc(centre[src], centre[dst], rad, np.linspace(0, 1, 41))[:, [0, 1, 0, 1]] for src, dst, rad in routed]
    boxes = [*nodes.values(), *(box for _, box in labels), *(point for curve in curves for point in curve)]
    extent = np.concatenate([np.min(boxes, axis=0)[:2], np.max(boxes, axis=0)[2:]])
    return _Placed(nodes, routed, labels, extent + np.array([-MARGIN, -MARGIN, MARGIN, MARGIN]))


def _route(edges: list[tuple[str, str, str]], centre: dict[str, np.ndarray], nodes: dict[str, np.ndarray],
           column: dict[str, int], label_size: dict[str, tuple[float, float]],
           ) -> tuple[list[tuple[str, str, float]], list[tuple[str, np.ndarray]]]:
    """Give each edge an arc and its label a spot, labelled edges first, shortest first.

    An arc pays for crossing node boxes and labels, for running alongside an edge already drawn (a crossing
    only comes near it at a few points) and for its curvature; a label spot pays for covering a node, a
    label or an edge. Each arc is chosen together with the best spot for its label.
    """
    ts = np.linspace(0, 1, 41)
    all_nodes = np.array(list(nodes.values()))
    routed, labels, drawn = [], [], np.zeros((0, 2))
    for src, dst, label in sorted(edges, key=lambda e: (not e[2], column[e[1]] - column[e[0]])):
        others = np.array([b for n, b in nodes.items() if n not in (src, dst)]).reshape(-1, 4)
        placed = np.array([b for _, b in labels]).reshape(-1, 4)

        def label_box(rad: float, t: float) -> np.ndarray:
            return _box(_arc(centre[src], centre[dst], rad, np.array([t]))[0], label_size[label], LABEL_PAD)

        def spot_cost(box: np.ndarray, t: float) -> float:
            clash = _overlaps(box, all_nodes, 0.1) + _overlaps(box, placed, 0.04)
            return 1000 * clash + 3 * _inside(drawn, box[None], 0.03).sum() + 15 * abs(t - 0.5)

        def cost(rad: float) -> tuple[float, float | None]:
            points = _arc(centre[src], centre[dst], rad, ts)
            near = np.linalg.norm(points[8:33, None] - drawn[None], axis=2).min(axis=1, initial=1.0) < 0.12
            total = 100 * _inside(points, others, 0.07).sum() + 20 * _inside(points, placed, 0.05).sum()
            total += near.sum() + 10 * abs(rad)
            if not label:
                return total, None
            t = min(LABEL_TS, key=lambda t: spot_cost(label_box(rad, t), t))
            return total + spot_cost(label_box(rad, t), t), t

        _, t, rad = min(((*cost(rad), rad) for rad in RADS), key=lambda c: c[0])
        routed.append((src, dst, rad))
        drawn = np.concatenate([drawn, _arc(centre[src], centre[dst], rad, ts)])
        if label:
            labels.append((label, label_box(rad, t)))
    return routed, labels


def _crowded(routed: list[tuple[str, str, float]], labels: list[tuple[str, np.ndarray]],
             centre: dict[str, np.ndarray], nodes: dict[str, np.ndarray]) -> list[float]:
    """x of each label that covers a node or another label, or that another edge runs through."""
    ts = np.linspace(0, 1, 101)
    curves = [_arc(centre[src], centre[dst], rad, ts) for src, dst, rad in routed]
    all_nodes = np.array(list(nodes.values()))
    crowded = []
    for i, (_, box) in enumerate(labels):
        others = np.array([b for j, (_, b) in enumerate(labels) if j != i]).reshape(-1, 4)
        edges_through = sum(_inside(curve, box[None], 0.02).any() for curve in curves)  # its own edge is one
        if edges_through > 1 or _overlaps(box, all_nodes, 0.0) or _overlaps(box, others, 0.0):
            crowded.append((box[0] + box[2]) / 2)
    return crowded


def _draw(ax, cell: CellGraph, placed: _Placed) -> None:
    patches = {}
    for name, (x0, y0, x1, y1) in placed.nodes.items():
        kind = "input" if name in cell.inputs else "output" if name == cell.output else "node"
        patches[name] = ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, zorder=3, fc=COLOURS[kind],
                                                    ec="0.3", boxstyle="round,pad=0,rounding_size=0.05"))
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, name, ha="center", va="center", fontsize=NODE_FONT, zorder=4)
    for src, dst, rad in placed.edges:
        (x0, y0, x1, y1), (u0, v0, u1, v1) = placed.nodes[src], placed.nodes[dst]
        ax.add_patch(FancyArrowPatch(
            ((x0 + x1) / 2, (y0 + y1) / 2), ((u0 + u1) / 2, (v0 + v1) / 2), connectionstyle=f"arc3,rad={rad}",
            patchA=patches[src], patchB=patches[dst], shrinkA=1, shrinkB=1, arrowstyle="-|>", mutation_scale=9,
            color="0.55" if dst == cell.output else "0.3", lw=0.9, zorder=1,
        ))
    for label, (x0, y0, x1, y1) in placed.labels:
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, label, ha="center", va="center", fontsize=LABEL_FONT,
                color="tab:blue", zorder=2, bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none"))
    ax.set_title(cell.title, fontsize=TITLE_FONT)
    ax.axis("off")


def draw_cells(cells: list[CellGraph], path: str | Path) -> Path:
    """Draw the cells side by side into one PNG, written atomically; returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    placed = [_place(cell) for cell in cells]
    widths = [p.extent[2] - p.extent[0] for p in placed]
    height = max(p.extent[3] - p.extent[1] for p in placed)
    fig = plt.figure(figsize=(sum(widths), height + TITLE_ROOM))
    left = 0.0
    for cell, p, width in zip(cells, placed, widths):
        # one data unit is one inch on both axes, so the sizes planned in _place hold on the page
        ax = fig.add_axes((left / sum(widths), 0, width / sum(widths), height / (height + TITLE_ROOM)))
        middle = (p.extent[1] + p.extent[3]) / 2
        ax.set_xlim(p.extent[0], p.extent[2])
        ax.set_ylim(middle - height / 2, middle + height / 2)
        _draw(ax, cell, p)
        left += width
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI)
    plt.close(fig)
    return path
