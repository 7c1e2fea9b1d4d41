"""The NAO controller: encoder, predictor, decoder, and the embedding optimisation that generates architectures."""

from naolit.controller.fit import fit_controller
from naolit.controller.metrics import kendall_tau, pairwise_accuracy, recovery
from naolit.controller.module import NAOController
from naolit.controller.optimize import Generated, generate_new, optimize_embeddings

__all__ = ["NAOController", "fit_controller", "generate_new", "optimize_embeddings", "Generated",
           "kendall_tau", "pairwise_accuracy", "recovery"]
