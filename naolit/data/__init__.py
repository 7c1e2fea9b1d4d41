"""Datasets as LightningDataModules: word-level language modelling (PTB, WikiText-2) for the RNN search,
CIFAR-10/100 image classification for the CNN search and final training."""

from naolit.data.cifar import CIFARDataModule, Cutout
from naolit.data.fake_cifar import write_fake_cifar
from naolit.data.language_modeling import (CORPORA, EOS, BpttWindows, FixedWindows, LanguageModelingDataModule,
                                           VariableWindows, batchify, build_vocab, encode, read_text, tokenize)

__all__ = ["LanguageModelingDataModule", "CORPORA", "EOS", "BpttWindows", "FixedWindows", "VariableWindows",
           "batchify", "build_vocab", "encode", "read_text", "tokenize", "CIFARDataModule", "Cutout",
           "write_fake_cifar"]
