"""What an offline W&B run recorded, read from its ``run-<id>.wandb`` file, for the tests.

The file is a LevelDB-style log (W&B's own format since its first versions): a 7-byte header
(":W&B", 0xBEE1, version), then records in 32 KiB blocks, each chunk with a 7-byte header (checksum,
length, type: 1 whole, 2 first, 3 middle, 4 last). A record is a ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK, HEADER = 32768, 7
WHOLE, LAST = 1, 4


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, chunks = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        if kind == 0:
            break
        chunks += data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (WHOLE, LAST):
            yield wandb_internal_pb2.Record.FromString(chunks)
            chunks = b""


@dataclass
class OfflineRun:
    """One offline run: its identity, its config (key -> JSON), the keys it logged, its artifacts and exit code."""

    group: str = ""
    job_type: str = ""
    name: str = ""
    config: dict[str, str] = field(default_factory=dict)
    logged: set[str] = field(default_factory=set)
    artifacts: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # name -> (type, files)
    exit_code: int | None = None

    @classmethod
    def read(cls, run_dir: Path) -> "OfflineRun":
        run = cls()
        for record in records(next(run_dir.glob("run-*.wandb"))):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.group, run.job_type, run.name = (record.run.run_group, record.run.job_type,
                                                     record.run.display_name)
            elif kind == "config":
                run.config |= {item.key: item.value_json for item in record.config.update}
            elif kind == "history":
                run.logged |= {item.key or "/".join(item.nested_key) for item in record.history.item}
            elif kind == "artifact":
                run.artifacts[record.artifact.name] = (record.artifact.type,
                                                       sorted(e.path for e in record.artifact.manifest.contents))
            elif kind == "exit":
                run.exit_code = record.exit.exit_code
        return run
