"""The interface every search space implements.

An architecture is a tuple of ints: its token sequence. Token 0 is reserved for the decoder's start
symbol, so real tokens are 1..vocab_size-1. Which tokens may stand at each position is fixed per
position (``allowed``), which makes uniform sampling and constrained decoding simple and exact.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import torch

from naolit.io import atomic_path
Arch = tuple[int, ...]
ENUMERABLE = 1_000_000  # spaces up to this many token sequences may be enumerated


class InvalidArchitecture(ValueError):
    """An architecture (tokens or genotype) that is not a member of its search space."""


def check_cell_parameters(space: str, num_nodes: int, kind: str, names: Sequence[str],
                          known: Sequence[str]) -> tuple[str, ...]:
    """Validate a cell space's node count and its list of op (or activation) names."""
    if num_nodes < 1:
        raise ValueError(f"{space} space: num_nodes must be >= 1, got {num_nodes}")
    if len(names) < 1 or len(set(names)) != len(names):
        raise ValueError(f"{space} space: {kind}s must be a non-empty list of distinct names, got {list(names)}")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"{space} space: unknown {kind} {unknown[0]!r}, expected names from {sorted(known)}")
    return tuple(names)


class SearchSpace(ABC):
    """A discrete architecture space with a fixed-length token encoding."""

    name: str
    seq_len: int
    vocab_size: int
    tokens_per_step: int  # how many tokens the encoder reads per LSTM step (one branch / one edge)

    # ---- what a space defines -------------------------------------------------------------------
    @abstractmethod
    def _allowed_tokens(self) -> torch.Tensor:
        """Bool tensor (seq_len, vocab_size): which tokens may stand at each position."""

    @abstractmethod
    def position_name(self, position: int) -> str:
        """Human description of a position, for error messages (e.g. 'normal cell, node 2, input 1')."""

    @abstractmethod
    def to_genotype(self, arch: Sequence[int]) -> dict[str, Any]:
        """The human, JSON-serialisable form of an architecture."""

    @abstractmethod
    def from_genotype(self, genotype: dict[str, Any]) -> Arch:
        """Inverse of ``to_genotype``; raises InvalidArchitecture naming what is wrong."""

    @abstractmethod
    def draw(self, arch: Sequence[int], path: str | Path) -> Path:
        """Render the cell(s) of an architecture to a PNG file."""

    def canonicalize(self, batch: torch.Tensor) -> torch.Tensor:
        """Map each row of a (n, seq_len) token batch to its canonical twin. Default: identity."""
        return batch

    def augment(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random equivalent twin of each row (e.g. branch swaps). Default: identity."""
        return batch

    # ---- derived, shared by every space -----------------------------------------------------------
    @cached_property
    def allowed(self) -> torch.Tensor:
        allowed = self._allowed_tokens()
        assert allowed.shape == (self.seq_len, self.vocab_size) and not allowed[:, 0].any()
        return allowed

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` architectures drawn uniformly from the space, as a (n, seq_len) LongTensor."""
        # Positions are independent and each is uniform over its allowed tokens, so the product is
        # uniform over the space.
        return torch.multinomial(self.allowed.float(), n, replacement=True, generator=generator).T.contiguous()

    def sample_new(self, n: int, exclude: set[Arch], generator: torch.Generator, max_tries: int = 100) -> list[Arch]:
        """``n`` uniformly random architectures, canonically distinct and not in ``exclude`` (canonical forms).

        Rejection sampling; when that keeps failing (a nearly exhausted space), a small space is
        enumerated so that its last unseen architectures are still found.
        """
        found: dict[Arch, Arch] = {}

        def take(batch: torch.Tensor) -> None:
            for arch, key in zip(batch.tolist(), self.canonicalize(batch).tolist()):
                key = tuple(key)
                if key not in exclude and key not in found and len(found) < n:
                    found[key] = tuple(arch)

        for _ in range(max_tries):
            if len(found) >= n:
                return list(found.values())
            take(self.sample(2 * (n - len(found)) + 8, generator))
        if len(found) < n and self.num_sequences <= ENUMERABLE:
            everything = self.enumerate()
            take(everything[torch.randperm(len(everything), generator=generator)])
        return list(found.values())

    @property
    def num_sequences(self) -> int:
        """How many token sequences the space has (symmetric twins counted separately)."""
        return int(torch.prod(self.allowed.sum(dim=1).double()).item())

    def enumerate(self) -> torch.Tensor:
        """Every token sequence of the space, (num_sequences, seq_len); only for small spaces."""
        choices = [self.allowed[p].nonzero().flatten() for p in range(self.seq_len)]
        return torch.cartesian_prod(*choices).reshape(-1, self.seq_len)

    def neighbours(self, arch: Sequence[int]) -> list[Arch]:
        """Every architecture one token away from ``arch`` (one edge, op, input or activation changed)."""
        return [tuple(arch[:p]) + (t,) + tuple(arch[p + 1:])
                for p in range(self.seq_len) for t in self.allowed[p].nonzero().flatten().tolist() if t != arch[p]]

    def validate(self, arch: Sequence[int]) -> Arch:
        """Return ``arch`` as a tuple, or raise InvalidArchitecture naming the first bad position."""
        arch = tuple(int(t) for t in arch)
        if len(arch) != self.seq_len:
            raise InvalidArchitecture(
                f"{self.name} architecture must have {self.seq_len} tokens, got {len(arch)}: {arch}"
            )
        for position, token in enumerate(arch):
            if not (0 <= token < self.vocab_size and self.allowed[position, token]):
                expected = self.allowed[position].nonzero().flatten().tolist()
                raise InvalidArchitecture(
                    f"{self.name} architecture, position {position} ({self.position_name(position)}): "
                    f"token {token} is not allowed, expected one of {expected}"
                )
        return arch

    def is_valid_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Bool (n,) : which rows of a token batch are valid architectures."""
        positions = torch.arange(self.seq_len)
        in_range = (batch >= 0) & (batch < self.vocab_size)
        ok = self.allowed[positions, batch.clamp(0, self.vocab_size - 1)] & in_range
        return ok.all(dim=1)

    def canonical(self, arch: Sequence[int]) -> Arch:
        """The canonical tuple of one architecture: equal for symmetric twins."""
        return tuple(self.canonicalize(torch.tensor([arch], dtype=torch.long))[0].tolist())

    def arch_hash(self, arch: Sequence[int]) -> str:
        """A short stable hash of the canonical form (equal for symmetric twins)."""
        text = f"{self.name}:" + ",".join(map(str, self.canonical(arch)))
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def export(self, arch: Sequence[int], stem: str | Path) -> Path:
        """Write ``stem``.json (the genotype) and ``stem``.png (its picture); returns the JSON's path."""
        stem = Path(stem)
        self.draw(arch, stem.with_name(stem.name + ".png"))
        return self.save_genotype(arch, stem.with_name(stem.name + ".json"))

    def save_genotype(self, arch: Sequence[int], path: str | Path) -> Path:
        """Write the JSON genotype of ``arch`` atomically (temp file + rename)."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_genotype(arch), indent=2) + "\n")
        return Path(path)

    def load_genotype(self, path: str | Path) -> Arch:
        """Read a JSON genotype file written by ``save_genotype`` (or by hand)."""
        path = Path(path)
        try:
            genotype = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"genotype file {path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InvalidArchitecture(f"{path}: not valid JSON ({err}); expected a genotype file such as a "
                                      f"search's best_genotype.json") from None
        try:
            return self.from_genotype(genotype)
        except InvalidArchitecture as err:
            raise InvalidArchitecture(f"{path}: {err}") from None

    def named_genotypes(self) -> dict[str, dict[str, Any]]:
        """Published architectures of this space, by name (genotype form). Default: none."""
        return {}

    def resolve(self, ref: str | Path) -> Arch:
        """An architecture from a name in ``named_genotypes()`` or from a JSON genotype file."""
        named = self.named_genotypes()
        if str(ref) in named:
            return self.from_genotype(named[str(ref)])
        if Path(ref).suffix == ".json" or Path(ref).exists():
            return self.load_genotype(ref)
        raise InvalidArchitecture(f"arch={ref!r} is neither a genotype .json file nor a named {self.name} "
                                  f"architecture; names: {sorted(named) or 'none for this space'}")

    def _check_genotype_space(self, genotype: dict[str, Any]) -> None:
        if not isinstance(genotype, dict):
            raise InvalidArchitecture(f"genotype is a {type(genotype).__name__}, expected a JSON object of space "
                                      f"{self.name!r}")
        if genotype.get("space") != self.name:
            raise InvalidArchitecture(f"genotype is for space {genotype.get('space')!r}, expected space {self.name!r}")
