"""The NAS-Bench-201 table: every architecture's accuracies, looked up by token sequence."""

from __future__ import annotations

import gzip
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from naolit.spaces import Arch, InvalidArchitecture, NB201Space

REQUIRED_COLUMNS = ("index", "arch_str")
NUM_ARCHS = 15625
TABLE_NAME = "nb201_merged_15625.csv"
SHIPPED_TABLE = Path(__file__).parent / "data" / f"{TABLE_NAME}.gz"  # see data/README.md
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


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
    ``path``, or where ``nb201_table_path`` finds it.

    The table is checked as it is read: its row count and columns, each row's index and ``arch_str``
    (every architecture once); a metric column when it is first asked for (``column``). Errors name
    the file, the line (the header is line 1) and what was expected.
    """

    def __init__(self, path: str | Path | None = None, data_dir: str | Path | None = None):
        self.path = nb201_table_path(path, data_dir)
        if not self.path.is_file():
            raise FileNotFoundError(f"NAS-Bench-201 table {self.path} does not exist: give the path of a "
                                    f"{TABLE_NAME}(.gz), or null for the table naolit ships")
        try:
            self.frame = pd.read_csv(self.path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as err:
            raise ValueError(f"{self.path}: not a readable CSV table ({err}); expected the NAS-Bench-201 table, "
                             f"{TABLE_NAME}(.gz)") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in self.frame.columns]
        if missing or len(self.frame) != NUM_ARCHS:
            raise ValueError(f"{self.path}: expected {NUM_ARCHS} rows with columns {list(REQUIRED_COLUMNS)}, "
                             f"got {len(self.frame)} rows and columns {list(self.frame.columns)}")
        misplaced = np.flatnonzero(self.frame["index"].to_numpy() != np.arange(NUM_ARCHS))
        if len(misplaced):
            row = int(misplaced[0])
            index = self.frame["index"].tolist()[row]
            raise ValueError(f"{self.path}, line {row + 2}: index is {index!r}, expected {row} (the rows in the "
                             f"official index order, 0..{NUM_ARCHS - 1})")
        self.space = NB201Space()
        self.tokens = torch.tensor([self._parse(row, s) for row, s in enumerate(self.frame["arch_str"])])
        if len(self.row_of) != NUM_ARCHS:
            first: dict[Arch, int] = {}
            for row, arch in enumerate(map(tuple, self.tokens.tolist())):
                if arch in first:
                    raise ValueError(f"{self.path}, line {row + 2}: arch_str {self.frame['arch_str'].iat[row]!r} "
                                     f"repeats line {first[arch] + 2}: expected every architecture once")
                first[arch] = row

    def _parse(self, row: int, arch_str: object) -> Arch:
        if not isinstance(arch_str, str):
            raise ValueError(f"{self.path}, line {row + 2}: arch_str is {arch_str!r}, expected a NAS-Bench-201 cell "
                             f"string such as {EXAMPLE!r}")
        try:
            return self.space.from_arch_str(arch_str)
        except InvalidArchitecture as err:
            raise ValueError(f"{self.path}, line {row + 2}: {err}") from None

    @cached_property
    def row_of(self) -> dict[Arch, int]:
        return {tuple(t): i for i, t in enumerate(self.tokens.tolist())}

    def column(self, name: str) -> torch.Tensor:
        """One metric column for every architecture, as a float tensor in table order; every value must
        be a finite number (an accuracy is never missing)."""
        if name not in self.frame.columns:
            metrics = [c for c in self.frame.columns if c not in REQUIRED_COLUMNS]
            raise KeyError(f"{self.path}: no column {name!r}; available: {metrics}")
        values = pd.to_numeric(self.frame[name], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            shown = zip(bad[:3], self.frame[name].iloc[bad[:3]].tolist())
            lines = ", ".join(f"line {row + 2}: {value!r}" for row, value in shown)
            raise ValueError(f"{self.path}: column {name}: {len(bad)} of its values are missing or not finite "
                             f"numbers ({lines}{', ...' if len(bad) > 3 else ''}); expected a finite value for "
                             f"every architecture")
        return torch.tensor(values, dtype=torch.float)

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
