"""The NAS-Bench-201 table: every architecture's accuracies, looked up by token sequence."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pandas as pd
import torch

from naolit.spaces import Arch, NB201Space

REQUIRED_COLUMNS = ("index", "arch_str")
NUM_ARCHS = 15625
TABLE_NAME = "nb201_merged_15625.csv"
SHIPPED_TABLE = Path(__file__).parent / "data" / f"{TABLE_NAME}.gz"  # see data/README.md


def nb201_table_path(path: str | Path | None = None, data_dir: str | Path | None = None) -> Path:
    """The table to read: ``path`` if given, else ``data_dir``/nb201/nb201_merged_15625.csv (or .csv.gz)
    where one is there, else the copy shipped with naolit."""
    if path is not None:
        return Path(path)
    if data_dir is not None:
        for candidate in (Path(data_dir) / "nb201" / TABLE_NAME, Path(data_dir) / "nb201" / f"{TABLE_NAME}.gz"):
            if candidate.is_file():
                return candidate
    return SHIPPED_TABLE


class NB201Table:
    """Reads ``nb201_merged_15625.csv`` or its gzip (one row per architecture, official index order):
    ``path``, or where ``nb201_table_path`` finds it."""

    def __init__(self, path: str | Path | None = None, data_dir: str | Path | None = None):
        self.path = nb201_table_path(path, data_dir)
        if not self.path.is_file():
            raise FileNotFoundError(f"NAS-Bench-201 table {self.path} does not exist: give the path of a "
                                    f"{TABLE_NAME}(.gz), or null for the table naolit ships")
        self.frame = pd.read_csv(self.path)
        missing = [c for c in REQUIRED_COLUMNS if c not in self.frame.columns]
        if missing or len(self.frame) != NUM_ARCHS:
            raise ValueError(f"{self.path}: expected {NUM_ARCHS} rows with columns {list(REQUIRED_COLUMNS)}, "
                             f"got {len(self.frame)} rows and columns {list(self.frame.columns)}")
        self.space = NB201Space()
        self.tokens = torch.tensor([self.space.from_arch_str(s) for s in self.frame["arch_str"]])

    @cached_property
    def row_of(self) -> dict[Arch, int]:
        return {tuple(t): i for i, t in enumerate(self.tokens.tolist())}

    def column(self, name: str) -> torch.Tensor:
        """One metric column for every architecture, as a float tensor in table order."""
        if name not in self.frame.columns:
            metrics = [c for c in self.frame.columns if c not in REQUIRED_COLUMNS]
            raise KeyError(f"{self.path}: no column {name!r}; available: {metrics}")
        return torch.tensor(self.frame[name].to_numpy(), dtype=torch.float)

    def rows(self, archs: list[Arch] | torch.Tensor) -> torch.Tensor:
        """Table rows of the given architectures."""
        archs = archs.tolist() if isinstance(archs, torch.Tensor) else archs
        rows = []
        for arch in archs:
            row = self.row_of.get(tuple(arch))
            if row is None:
                raise KeyError(f"{self.path}: architecture {tuple(arch)} is not in the table "
                               f"(expected {NUM_ARCHS} NAS-Bench-201 token sequences of op tokens 1..5)")
            rows.append(row)
        return torch.tensor(rows, dtype=torch.long)
