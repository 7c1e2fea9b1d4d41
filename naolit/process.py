"""Process-wide settings that train.py (and the benchmarks, to measure what it runs) apply before any work.

Only for processes of ours: library code never changes them on import, since it may run inside
someone else's process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

import torch
from omegaconf import DictConfig

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_KEPT_BYTES = 1 << 30


def configure_process(cfg: DictConfig) -> None:
    """torch's CPU threads (``cfg.threads``, if set) and the allocator (``cfg.keep_freed_memory``)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.keep_freed_memory and not keep_freed_memory():
        log.info("keep_freed_memory: the C library is not glibc, its allocator is left as it is")


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep the memory of freed tensors for the next ones, instead of returning it
    to the operating system. Returns whether the C library is glibc and took the settings.

    By default glibc maps a large block straight from the system and unmaps it when freed (above a
    threshold that it raises, up to 32 MiB, as such blocks are freed), and hands free memory at the
    top of its heap back to the system (above twice that). A forward pass on the CPU allocates and
    frees tensors of megabytes all the time, so the system faults their pages in again and again:
    12,000 minor page faults per architecture the CNN supernet scores at the benchmark's size.
    Thresholds fixed at 1 GiB keep those pages. Threads other than the main one (the scoring
    threads) allocate from arenas of their own, heaps of at most 64 MiB that glibc unmaps when
    they fall empty whatever the thresholds: tensors of several MiB, freed in another order than
    allocated, leave heaps empty and fault in new ones (11,000 page faults per architecture scored,
    10 together). A single arena for every thread keeps their memory too, at the price of a lock
    that tensor-sized allocations do not feel. The cost of it all: the resident memory of the
    process stays at its peak instead of shrinking when tensors are freed.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    settings = ((_M_MMAP_THRESHOLD, _KEPT_BYTES), (_M_TRIM_THRESHOLD, _KEPT_BYTES), (_M_ARENA_MAX, 1))
    return all(libc.mallopt(parameter, value) for parameter, value in settings)
