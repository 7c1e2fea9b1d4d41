"""Search spaces: each maps architectures to fixed-length token sequences and back."""

from naolit.spaces.base import Arch, InvalidArchitecture, SearchSpace
from naolit.spaces.cnn import CNNCellSpace
from naolit.spaces.nb201 import NB201Space
from naolit.spaces.rnn import RNNCellSpace

__all__ = ["Arch", "InvalidArchitecture", "SearchSpace", "CNNCellSpace", "RNNCellSpace", "NB201Space"]
