"""The package version (one place: ``mmfast.__version__`` and serialised results read it)."""

__version__ = "0.1.0"
