"""Candidate trainings that fail on purpose, for the fault tests of trained searches. The workers import
them by name (this folder is on their path), so they live in a module of their own."""

import copy
import os
import signal
from pathlib import Path

from naolit.search.candidate import train_candidate


def log_call(folder: str) -> None:
    """One line per training started, in the candidates' folder: ``calls.txt``."""
    Path(folder).parent.mkdir(parents=True, exist_ok=True)
    with open(Path(folder).parent / "calls.txt", "a") as calls:
        calls.write(Path(folder).name + "\n")


def first(folder: str, what: str) -> bool:
    """True for the first call to claim ``what`` in the candidates' folder, False for every later one."""
    try:
        os.close(os.open(Path(folder).parent / what, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def killed_once(cfg, arch, seed, folder):
    """Train the candidate, except that the first call's worker is killed (SIGKILL) after it started."""
    log_call(folder)
    if first(folder, "killed"):
        os.kill(os.getpid(), signal.SIGKILL)
    return train_candidate(cfg, arch, seed, folder)


def diverging_once(cfg, arch, seed, folder):
    """Train the candidate; the first one with a learning rate of 1e30, which makes its loss NaN."""
    log_call(folder)
    if first(folder, "diverged"):
        cfg = copy.deepcopy(cfg)
        cfg["model"]["lr"] = 1e30
    return train_candidate(cfg, arch, seed, folder)
