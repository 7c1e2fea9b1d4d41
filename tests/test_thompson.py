"""Thompson sampling over NAO's decoded candidates, from a Gaussian process on their tokens."""

import pytest
import torch

from naolit.controller import NAOController, kendall_tau
from naolit.search.strategies import NAOStrategy
from naolit.search.strategies.thompson import TokenGaussianProcess

from search_helpers import SPACE, TINY_CONTROLLER, fresh_loop


def smooth_pool(seed: int, size: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """NAS-Bench-201 token sequences and a score that adds up over their edges."""
    tokens = torch.randint(1, 6, (size, 6), generator=torch.Generator().manual_seed(seed))
    return tokens, (tokens == 3).double().mean(1) + 0.5 * (tokens[:, 0] == 1).double()


@pytest.mark.parametrize("seed", [0, 1])
def test_the_posterior_ranks_unseen_architectures_and_is_sure_only_where_the_pool_has_evidence(seed):
    tokens, score = smooth_pool(seed)
    gp = TokenGaussianProcess(tokens[:60], score[:60])
    mean, _ = gp.posterior(tokens[60:])
    assert kendall_tau(mean.float(), score[60:].float()) > 0.7
    assert torch.equal(gp.predict(tokens[60:]), mean)  # the mean alone, without the covariance
    unseen = 1 + tokens[:5] % 5  # every token changed
    _, covariance = gp.posterior(torch.cat([tokens[:5], unseen]))
    assert covariance.diagonal()[:5].max() < 0.1 * covariance.diagonal()[5:].min()


def test_a_draw_repeats_with_its_generator_and_puts_the_pools_best_above_its_worst():
    tokens, score = smooth_pool(0, size=60)
    gp = TokenGaussianProcess(tokens, score)
    candidates = torch.stack([tokens[score.argmax()], tokens[score.argmin()]])
    draws = [gp.sample(candidates, torch.Generator().manual_seed(s)) for s in range(100)]
    assert torch.equal(draws[0], gp.sample(candidates, torch.Generator().manual_seed(0)))
    assert all(d[0] > d[1] for d in draws)


def test_equal_targets_give_a_flat_posterior_instead_of_a_singular_kernel():
    tokens, _ = smooth_pool(0, size=20)
    mean, covariance = TokenGaussianProcess(tokens, torch.full((20,), 0.5)).posterior(tokens[:3])
    assert torch.allclose(mean, torch.full((3,), 0.5, dtype=torch.double)) and torch.isfinite(covariance).all()


def test_a_pool_of_one_is_refused_with_the_shapes_it_got():
    with pytest.raises(ValueError, match=r"at least 2 token sequences.*shape \(1, 6\) and 1 targets"):
        TokenGaussianProcess(torch.ones(1, 6, dtype=torch.long), torch.ones(1))


def test_nao_refuses_an_unknown_choose_by_and_thompson_on_a_start_of_one():
    controller = NAOController(SPACE, embedding_size=8, hidden_size=16, predictor_hidden_size=16, predictor_layers=1)
    with pytest.raises(ValueError, match=r"choose_by must be one of \('predictor', 'thompson'\), got 'ucb'"):
        NAOStrategy(SPACE, controller, fit={"steps": 1}, generate={"top_k": 3}, choose_by="ucb")
    with pytest.raises(ValueError, match="needs initial_size >= 2, got 1"):
        NAOStrategy(SPACE, controller, fit={"steps": 1}, generate={"top_k": 3}, initial_size=1, per_round=1,
                    candidates=5, choose_by="thompson")
    NAOStrategy(SPACE, controller, fit={"steps": 1}, generate={"top_k": 3}, initial_size=1)  # nothing to rank


@pytest.mark.parametrize("choose_by", ["thompson", "predictor"])
def test_a_nao_search_choosing_among_candidates_queries_decoded_ones_and_repeats_with_its_seed(search_cfg, choose_by):
    def history():
        loop = fresh_loop(search_cfg("nao", f"strategy.choose_by={choose_by}", "strategy.candidates=20",
                                     "controller.fit.steps=2", "strategy.first_steps=5", *TINY_CONTROLLER))
        loop.run(max_rounds=4)
        return [(r.arch, r.origin) for r in loop.pool.history]

    first = history()
    assert sum(origin.startswith("nao eta=") for _, origin in first) == 3  # one per round after the random start
    assert history() == first
