"""A pacda task plugin: a small torch MLP on scikit-learn's wine data (kind ``wine-mlp``)."""

from byom_wine.task import WineSpec, WineTask

__all__ = ["WineSpec", "WineTask"]
