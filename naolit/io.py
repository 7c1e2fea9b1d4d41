"""Writing files so that a crash never leaves a half-written one behind, and a failed write names its file."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)
# What a write error means for the user, by errno.
_WRITE_HINTS = {
    errno.ENOSPC: "the disk is full: free some space there, or write elsewhere (hydra.run.dir=...)",
    errno.EDQUOT: "the disk quota is used up: free some space there, or write elsewhere (hydra.run.dir=...)",
    errno.EACCES: "no permission to write there: write elsewhere (hydra.run.dir=...)",
    errno.EPERM: "no permission to write there: write elsewhere (hydra.run.dir=...)",
    errno.EROFS: "the file system is read-only: write elsewhere (hydra.run.dir=...)",
}
_TEMPORARY = re.compile(r"\.(?P<stem>.+)\.(?P<pid>\d+)\.tmp(?P<suffix>\.[^.]*)?")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write to; it replaces ``path`` only if the block succeeds.

    The parent folder is created. The temporary name keeps ``path``'s suffix (some writers, such as
    matplotlib, choose the format from it) and is unique per process (DDP ranks may write side by side);
    one left by a killed process is removed by ``remove_stale_temporaries``. An OSError while writing
    (a full disk, no permission) is raised again naming ``path`` and what to do.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        tmp.replace(path)
    except OSError as err:
        raise write_error(path, err) from err
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_error(path: str | Path, err: OSError) -> OSError:
    """``err``, raised while writing ``path``, as an error of the same type that names ``path`` and,
    for a full disk or a missing permission, says so and what to do."""
    hint = _WRITE_HINTS.get(err.errno)
    message = f"{err.strerror or err} while writing {path}" + (f": {hint}" if hint else "")
    return type(err)(err.errno, message) if err.errno is not None else OSError(message)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files ``atomic_path`` left in ``folder`` when their process was killed
    mid-write (their process id no longer runs); returns the removed paths."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp*"):
        match = _TEMPORARY.fullmatch(tmp.name)
        if match is None or _running(int(match["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):  # a concurrent start may have removed it
            tmp.unlink()
            removed.append(tmp)
            log.info("removed %s, left by a write that was killed", tmp)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
