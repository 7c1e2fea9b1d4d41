"""What a run prints: naolit's progress and results, without third-party noise.

``train.py`` calls ``quiet_third_parties`` first: deprecation notices of the libraries naolit builds on
(a user can do nothing about them), Lightning's advertising tips, its advice to add data loader workers
to the language models' in-memory streams, which need none, and its note that a supernet has no
validation step (supernets score architectures on the validation batches themselves), the
plugins that Optuna's database layer (alembic) announces when a sweep starts, and Ray's note, on
starting an instance here for ``executor=ray``, that its default (token authentication) is on.
"""

from __future__ import annotations

import logging
import warnings

THIRD_PARTIES = r"(torch|pytorch_lightning|lightning_fabric|lightning_utilities|torchmetrics|hydra|omegaconf|wandb)(\.|$)"
LIGHTNING_LOGGER = "pytorch_lightning.utilities.rank_zero"
RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
RAY_AUTH_DEFAULT = "Token authentication is enabled for this Ray cluster"


def quiet_third_parties() -> None:
    """Filter the third-party warnings and messages above, for the rest of the process."""
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTIES)
    warnings.filterwarnings("ignore", message=r"The '\w+_dataloader' does not have many workers")
    warnings.filterwarnings("ignore", message=r"You passed in a `val_dataloader` but have no `validation_step`")
    logging.getLogger(LIGHTNING_LOGGER).addFilter(lambda record: not record.getMessage().startswith("💡 Tip"))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger(RAY_AUTH_LOGGER).addFilter(lambda record: not record.getMessage().startswith(RAY_AUTH_DEFAULT))
