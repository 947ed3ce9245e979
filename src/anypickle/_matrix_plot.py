"""Compatibility path for scripts/generate_docs.py (owned by the benchmarks work): the heatmaps of a
matrix document live in :mod:`anypickle.lab.plot`. Remove once the generator imports them from there."""

from .lab.plot import *  # noqa: F401,F403
