"""Plots of a search: the query-by-query curve."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from naolit.io import atomic_path  # noqa: E402


def plot_curves(curves: dict[str, tuple[list[float], list[float], list[float] | None]], path: str | Path,
                ylabel: str, title: str, reference: float | None = None,
                points: dict[str, tuple[list[float], list[float]]] | None = None) -> Path:
    """One line per label: (x, mean, std or None); std is drawn as a band. ``points``: one set of
    (x, y) dots per label, under the lines. Written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, (x, y) in (points or {}).items():
        ax.scatter(x, y, s=6, color="0.6", label=label, zorder=1)
    for label, (x, mean, std) in curves.items():
        ax.plot(x, mean, label=label)
        if std is not None:
            ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
    if reference is not None:
        ax.axhline(reference, color="0.5", linestyle="--", linewidth=1, label=f"optimum {reference:.2f}")
    ax.set_xlabel("queries")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path
