"""The package version, in a module of its own so that any submodule can read it without
importing the package that imports it."""

__version__ = "0.1.0"
