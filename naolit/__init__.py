"""naolit: Neural Architecture Optimization (NAO / NAO-WS) on PyTorch Lightning and Hydra."""

import os

# MKL's strict reproducibility mode: matrix products give the same bits on any number of threads, so a
# search does not depend on how many cores were free (naolit/threads.py). MKL reads this at its first call.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"
