"""Fixed-architecture networks for final training of discovered cells, and their LightningModules."""

from naolit.models.cnn import NASNetwork, count_flops, count_parameters
from naolit.models.image_classifier import ImageClassifier
from naolit.models.language_model import RNNLanguageModel
from naolit.models.rnn import RNNModel

__all__ = ["NASNetwork", "count_flops", "count_parameters", "ImageClassifier", "RNNLanguageModel", "RNNModel"]
