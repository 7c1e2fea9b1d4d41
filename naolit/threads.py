"""CPU threads for the NAO controller: the cores nobody else is using, where that cannot change a search.

torch's matrix products on the CPU are Intel MKL's, and MKL's sums round differently on different
numbers of threads unless its strict reproducibility mode is on (``MKL_CBWR=AUTO,STRICT``, which
``naolit/__init__.py`` sets unless the environment already has ``MKL_CBWR``). In that mode a search is
the same on 1 or 2 threads (``tests/test_threads.py``), so ``controller.threads=auto`` may take a
different count each round: every idle core on a quiet machine, one thread on a busy one, where more
threads would spin waiting for cores that other jobs hold.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache
from pathlib import Path

import torch

MKL_CBWR_ALL = -1  # mkl_cbwr_get's argument for the whole setting (mkl_service.h)
MKL_CBWR_STRICT = 0x10000


@cache
def threads_cannot_change_results() -> bool:
    """Whether MKL's strict reproducibility mode is on in this process (False where torch has no MKL, or
    MKL started before ``MKL_CBWR`` was set: it reads the variable once, at its first call)."""
    try:
        library = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        get = library.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return False
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    return bool(get(MKL_CBWR_ALL) & MKL_CBWR_STRICT)


def idle_cores() -> int | None:
    """Cores of this process's CPU set that no other runnable thread wants now (None: unknown, no /proc)."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        own = sum(_state(task) == "R" for task in Path("/proc/self/task").iterdir())
    except (OSError, ValueError, IndexError):
        return None
    return len(os.sched_getaffinity(0)) - (running - own)


def _state(task: Path) -> str:
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # the thread ended while we looked
        return ""


def controller_threads(setting: int | str | None) -> int | None:
    """torch's threads for one round of the controller under ``controller.threads`` (None: the job's).
    ``auto``: the idle cores, at least 1 and at most the job's threads, if threads cannot change results;
    else 1."""
    if setting != "auto":
        return setting
    idle = idle_cores()
    if idle is None or not threads_cannot_change_results():
        return 1
    return max(1, min(idle, torch.get_num_threads()))
