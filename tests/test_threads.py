"""The controller's threads (naolit/threads.py): the idle cores each round, and a search that does not depend on them."""

import os
import subprocess
import sys

import pytest
from conftest import CHILD_ENV, DATA, ROOT

from naolit import threads
from naolit.search.loop import check_search_settings
from naolit.search.strategies import RandomSearch
from naolit.spaces import NB201Space


def _history(out, threads: int, mkl_cbwr: str | None) -> str:
    env = {**CHILD_ENV, "NAOLIT_DATA_DIR": str(DATA)}
    if mkl_cbwr is not None:
        env["MKL_CBWR"] = mkl_cbwr
    run = subprocess.run([sys.executable, "train.py", "+experiment=nb201_nao", "search.budget=30",
                          f"controller.threads={threads}", "logger=none", f"hydra.run.dir={out}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    return (out / "search" / "history.csv").read_text()


def test_a_search_is_the_same_on_one_and_two_controller_threads_only_in_mkls_strict_mode(tmp_path):
    assert _history(tmp_path / "strict1", 1, None) == _history(tmp_path / "strict2", 2, None)
    # MKL_CBWR="" turns the mode off: the two then round differently, and the searches part
    assert _history(tmp_path / "off1", 1, "") != _history(tmp_path / "off2", 2, "")


def _strict_mode_after(code: str) -> str:
    env = {key: value for key, value in CHILD_ENV.items() if key != "MKL_CBWR"}
    run = subprocess.run([sys.executable, "-c", code + "\nimport naolit.threads as t\n"
                          "print(t.threads_cannot_change_results())"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_importing_naolit_first_turns_on_mkl_strict_mode_and_a_late_import_is_detected():
    assert _strict_mode_after("import torch") == "True"
    assert _strict_mode_after("import torch\ntorch.ones(8, 8) @ torch.ones(8, 8)") == "False"  # MKL started first


@pytest.mark.parametrize("idle,job,expected", [(2, 2, 2), (5, 2, 2), (1, 2, 1), (0, 2, 1), (-3, 4, 1), (None, 2, 1)])
def test_auto_takes_the_idle_cores_within_the_jobs_threads(monkeypatch, idle, job, expected):
    monkeypatch.setattr(threads, "idle_cores", lambda: idle)
    monkeypatch.setattr(threads, "threads_cannot_change_results", lambda: True)
    monkeypatch.setattr(threads.torch, "get_num_threads", lambda: job)
    assert threads.controller_threads("auto") == expected


def test_auto_is_one_thread_where_threads_could_change_the_search(monkeypatch):
    monkeypatch.setattr(threads, "idle_cores", lambda: 2)
    monkeypatch.setattr(threads, "threads_cannot_change_results", lambda: False)
    assert threads.controller_threads("auto") == 1
    assert threads.controller_threads(3) == 3 and threads.controller_threads(None) is None


def test_idle_cores_reads_the_machine():
    idle = threads.idle_cores()
    assert isinstance(idle, int) and idle <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("bad", [0, -1, "many", 1.5])
def test_bad_controller_threads_are_named(bad):
    strategy = RandomSearch(NB201Space(), initial_size=2, per_round=2)
    with pytest.raises(ValueError, match=f"controller: threads must be auto, an integer >= 1 or null, got {bad!r}"):
        check_search_settings(strategy, 10, None, False, "stop", bad)
