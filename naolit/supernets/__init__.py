"""Weight-sharing supernets: one set of weights for every architecture of a search space."""

from naolit.supernets.base import Supernet
from naolit.supernets.cnn import CNNSupernet
from naolit.supernets.rnn import RNNSupernet

__all__ = ["Supernet", "CNNSupernet", "RNNSupernet"]
