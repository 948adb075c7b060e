"""pytest-perfci: provision machines, check what their hardware really gives you, and clean up."""

__version__ = "0.1.0"
