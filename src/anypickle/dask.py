"""``import anypickle.dask`` (and ``preload=["anypickle.dask"]``): the documented entry point of the Dask
integration, which lives in :mod:`anypickle.shipping.dask`; importing this module registers the family."""

from .shipping.dask import *  # noqa: F401,F403  (registers the serialization family "anypickle")
from .shipping.dask import __all__  # noqa: F401
