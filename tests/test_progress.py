"""The progress bar's whole-run ETA: epochs at their measured pace, search rounds at theirs."""

from types import SimpleNamespace

import pytest

import naolit.progress as progress
from naolit.progress import EpochProgressBar
from naolit.search import SearchCallback
from naolit.search.strategies import RandomSearch
from naolit.spaces import NB201Space


def search_callback(every_n_epochs: int, max_rounds=None) -> SearchCallback:
    callback = SearchCallback(RandomSearch(NB201Space(), 4, 2), every_n_epochs, pool_size=8, max_rounds=max_rounds)
    callback.loop = SimpleNamespace(round=1)
    return callback


def eta(monkeypatch, search, now=110.0, max_epochs=6):
    """Two epochs done in 100 s (a 40 s round among them, if any), 10 s into the third."""
    bar = EpochProgressBar()
    bar._fit_start, bar._last_epoch_end, bar._start_epoch = 0.0, 100.0, 0
    monkeypatch.setattr(progress.time, "monotonic", lambda: now)
    trainer = SimpleNamespace(current_epoch=2, max_epochs=max_epochs, callbacks=[search] if search else [])
    return bar.run_eta(trainer)


def test_epochs_alone_at_their_pace(monkeypatch):
    assert eta(monkeypatch, None) == (4 * 50.0 - 10.0, True)


def test_search_rounds_at_the_pace_of_the_rounds_done(monkeypatch):
    search = search_callback(every_n_epochs=2)
    search.round_seconds = [40.0]
    # epochs at (100 - 40) / 2 = 30 s, then rounds after epochs 3 and 5 (counted from 0) at 40 s each
    assert eta(monkeypatch, search) == (4 * 30.0 - 10.0 + 2 * 40.0, True)
    search.max_rounds = 2  # one round left
    assert eta(monkeypatch, search) == (4 * 30.0 - 10.0 + 40.0, True)


def test_before_the_first_round_the_eta_is_a_lower_bound(monkeypatch):
    search = search_callback(every_n_epochs=3)
    assert eta(monkeypatch, search) == (4 * 50.0 - 10.0, False)


@pytest.mark.parametrize("epochs, rounds", [(range(0, 6), 3), (range(2, 6), 2), (range(1, 2), 1), (range(2, 3), 0)])
def test_rounds_in_counts_the_epochs_that_end_with_a_round(epochs, rounds):
    assert search_callback(every_n_epochs=2).rounds_in(epochs) == rounds
