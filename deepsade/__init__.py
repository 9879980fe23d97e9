"""deepsade: train neural networks that provably satisfy domain constraints (DeepSaDe)."""

__version__ = "0.1.0"
