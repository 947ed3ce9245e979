"""Compatibility path for scripts/generate_docs.py (owned by the benchmarks work): the rendering of a
matrix document lives in :mod:`anypickle.lab.render`. Remove once the generator imports it from there."""

from .lab.render import *  # noqa: F401,F403
from .lab.render import SUMMARY_NOTE, _count, version_pairs  # noqa: F401
