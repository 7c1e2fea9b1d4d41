"""Thompson sampling over candidate architectures, from a Gaussian process on their tokens.

NAO decodes its candidates by gradient ascent on its own predictor, so among them the predictor rates
highest exactly the ones it overrates most. A model fit apart from that ascent ranks them better: a
Gaussian process on the evaluated architectures, with the kernel ``var * exp(-d / length)`` over the
Hamming distance ``d`` between token sequences. Its length and noise are the pair of a small grid with
the highest marginal likelihood of the pool's targets, refit each round, as Bayesian optimisation does.
One draw from the posterior over the candidates ranks them: the draw follows the posterior mean where the
pool has evidence and explores where it has none.
"""

from __future__ import annotations

import torch

LENGTHS = (0.5, 1.0, 2.0, 4.0)  # tokens
NOISES = (0.01, 0.03, 0.1, 0.3)  # fractions of the targets' variance


class TokenGaussianProcess:
    """Gaussian process regression of ``targets`` on token sequences ``tokens`` (one row each)."""

    def __init__(self, tokens: torch.Tensor, targets: torch.Tensor):
        if tokens.ndim != 2 or len(tokens) != len(targets) or len(tokens) < 2:
            raise ValueError(f"TokenGaussianProcess: expected at least 2 token sequences and one target each, "
                             f"got tokens of shape {tuple(tokens.shape)} and {len(targets)} targets")
        self.tokens = tokens.long()
        y = targets.double()
        self.mean = y.mean()
        self.variance = y.var().clamp_min(1e-12)  # equal targets: a flat posterior, not a singular kernel
        distances, identity = _hamming(self.tokens, self.tokens), torch.eye(len(y), dtype=torch.double)
        best = None
        for length in LENGTHS:
            for noise in NOISES:
                kernel = self.variance * (torch.exp(-distances / length) + noise * identity)
                chol = torch.linalg.cholesky(kernel)
                alpha = torch.cholesky_solve((y - self.mean)[:, None], chol)[:, 0]
                log_likelihood = -0.5 * (y - self.mean) @ alpha - torch.log(torch.diagonal(chol)).sum()
                if best is None or log_likelihood > best[0]:
                    best = (log_likelihood, length, noise, chol, alpha)
        _, self.length, self.noise, self._chol, self._alpha = best

    def _kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.variance * torch.exp(-_hamming(a.long(), b.long()) / self.length)

    def predict(self, candidates: torch.Tensor) -> torch.Tensor:
        """The posterior mean of the function at the candidates."""
        return self.mean + self._kernel(candidates, self.tokens) @ self._alpha

    def posterior(self, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and covariance of the function (noise-free) at the candidates."""
        cross = self._kernel(candidates, self.tokens)
        covariance = self._kernel(candidates, candidates) - cross @ torch.cholesky_solve(cross.T, self._chol)
        return self.mean + cross @ self._alpha, (covariance + covariance.T) / 2

    def sample(self, candidates: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One joint draw of the function at the candidates."""
        mean, covariance = self.posterior(candidates)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # tolerates the rounding a Cholesky would not
        noise = torch.randn(len(candidates), generator=generator, dtype=torch.double)
        return mean + eigenvectors @ (eigenvalues.clamp_min(0).sqrt() * noise)


def _hamming(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a[:, None, :] != b[None, :, :]).sum(-1).double()
