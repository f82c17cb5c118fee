"""Bayesian customer segmentation: the pipeline steps (``segment`` on the command line) and the
Python API, :class:`~analysis.api.Segmentation`.

``__version__`` is the installed distribution's version, which ``pyproject.toml`` sets.
"""

from importlib.metadata import PackageNotFoundError, version

from analysis.api import Segmentation

try:
    __version__ = version("bayes-segments")
except PackageNotFoundError:  # a source tree on the path, not installed (pip install -e .)
    __version__ = "unknown"

__all__ = ["Segmentation", "__version__"]
