"""naolit: Neural Architecture Optimization (NAO / NAO-WS) on PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
