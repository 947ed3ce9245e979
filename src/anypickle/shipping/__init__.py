"""Shipping: tools for schedulers built on the facade. :mod:`.wrap` (a wrapper plain pickle can ship),
:mod:`.executor` and :mod:`._worker` (a process pool whose tasks travel through anypickle), and
:mod:`.dask` (the Dask serialization family, registered by ``import anypickle.dask``)."""
