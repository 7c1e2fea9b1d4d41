"""The architecture pool: canonical keys, history, keeping the best, state."""

import pytest
import torch

from naolit.search import ArchPool
from naolit.spaces import CNNCellSpace

from search_helpers import ALL_NB201, SPACE


def test_pool_keys_by_canonical_form_and_history_keeps_every_evaluation():
    space = CNNCellSpace()
    batch = space.sample(20, torch.Generator().manual_seed(0))
    twins = space.augment(batch, torch.Generator().manual_seed(1))
    i = next(i for i in range(20) if not torch.equal(batch[i], twins[i]))
    arch, twin, other = tuple(batch[i].tolist()), tuple(twins[i].tolist()), tuple(batch[(i + 1) % 20].tolist())
    assert arch != twin and space.canonical(arch) == space.canonical(twin)

    pool = ArchPool(space)
    pool.add(arch, 1.0, 0, "random")
    pool.add(other, 2.0, 0, "random")
    assert twin in pool and arch in pool and len(pool) == 2
    pool.add(twin, 3.0, 1, "rescore")  # the same architecture, scored again
    assert len(pool) == 2 and len(pool.seen) == 2
    assert [(r.arch, r.score, r.round) for r in pool.history] == [(arch, 1.0, 0), (other, 2.0, 0), (twin, 3.0, 1)]
    latest = pool.live[space.canonical(arch)]
    assert (latest.arch, latest.score, latest.origin) == (twin, 3.0, "rescore")
    assert pool.best() == latest


def nb201_pool(scores):
    pool = ArchPool(SPACE)
    for arch, score in zip(ALL_NB201, scores):
        pool.add(arch, score, 0, "random")
    return pool


def test_keep_best_drops_the_worst_and_they_stay_seen():
    scores = [3.0, 7.0, 1.0, 9.0, 5.0, 7.0, 2.0, 8.0, 0.0, 4.0]
    pool = nb201_pool(scores)
    dropped = pool.keep_best(4)
    assert [r.score for r in pool.records()] == [9.0, 8.0, 7.0, 7.0]
    assert [r.arch for r in pool.records()][2:] == [ALL_NB201[1], ALL_NB201[5]]  # ties keep insertion order
    assert [r.score for r in dropped] == [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    for record in dropped:
        assert record.arch not in pool and SPACE.canonical(record.arch) in pool.seen
    assert len(pool) == 4 and len(pool.seen) == 10 and len(pool.history) == 10
    assert pool.keep_best(10) == [] and len(pool) == 4
    assert [r.score for r in pool.top(2)] == [9.0, 8.0] and pool.best().score == 9.0
    with pytest.raises(ValueError, match="empty"):
        ArchPool(SPACE).best()


def test_tensors_are_the_live_pool():
    pool = nb201_pool([3.0, 7.0, 1.0, 9.0, 5.0])
    pool.keep_best(3)
    tokens, scores = pool.tensors()
    assert tokens.dtype == torch.long and scores.dtype == torch.float and tokens.shape == (3, 6)
    assert {tuple(t): s for t, s in zip(tokens.tolist(), scores.tolist())} == {
        ALL_NB201[1]: 7.0, ALL_NB201[3]: 9.0, ALL_NB201[4]: 5.0}


def test_pool_state_round_trips_through_torch_save(tmp_path):
    pool = nb201_pool([3.0, 7.0, 1.0, 9.0, 5.0, 6.0])
    pool.add(ALL_NB201[0], 10.0, 1, "rescore")
    pool.keep_best(3)
    torch.save(pool.state_dict(), tmp_path / "pool.pt")
    restored = ArchPool(SPACE)
    restored.load_state_dict(torch.load(tmp_path / "pool.pt", weights_only=False))
    assert restored.history == pool.history
    assert list(restored.live.items()) == list(pool.live.items())
    assert restored.seen == pool.seen and len(restored.seen) == 6  # dropped architectures stay seen
    assert restored.records() == pool.records()
    assert all(torch.equal(a, b) for a, b in zip(restored.tensors(), pool.tensors()))

