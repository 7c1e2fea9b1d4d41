"""Tabular benchmarks: ground-truth scores for every architecture of a space."""

from naolit.benchmarks.nb201 import NB201Table, nb201_table_path

__all__ = ["NB201Table", "nb201_table_path"]
