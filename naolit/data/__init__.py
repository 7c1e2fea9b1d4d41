"""Datasets as LightningDataModules: word-level language modelling (PTB, WikiText-2) for the RNN search,
CIFAR-10/100 image classification for the CNN search and final training. ``naolit.data.fake_cifar``
writes small generated datasets in the CIFAR format (``python -m naolit.data.fake_cifar DIR``)."""

from naolit.data.cifar import CIFARDataModule, Cutout
from naolit.data.language_modeling import (CORPORA, EOS, BpttWindows, FixedWindows, LanguageModelingDataModule,
                                           VariableWindows, batchify, build_vocab, encode, read_text, tokenize)

__all__ = ["LanguageModelingDataModule", "CORPORA", "EOS", "BpttWindows", "FixedWindows", "VariableWindows",
           "batchify", "build_vocab", "encode", "read_text", "tokenize", "CIFARDataModule", "Cutout"]
