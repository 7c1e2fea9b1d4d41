"""Datasets as LightningDataModules: word-level language modelling (PTB, WikiText-2) for the RNN search."""

from naolit.data.language_modeling import (CORPORA, EOS, BpttWindows, FixedWindows, LanguageModelingDataModule,
                                           VariableWindows, batchify, build_vocab, encode, read_text, tokenize)

__all__ = ["LanguageModelingDataModule", "CORPORA", "EOS", "BpttWindows", "FixedWindows", "VariableWindows",
           "batchify", "build_vocab", "encode", "read_text", "tokenize"]
