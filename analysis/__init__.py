"""Bayesian customer segmentation: the pipeline steps (``segment`` on the command line).

``__version__`` is the installed distribution's version, which ``pyproject.toml`` sets.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bayes-segments")
except PackageNotFoundError:  # a source tree on the path, not installed (pip install -e .)
    __version__ = "unknown"
