"""The matrix lab: the catalogue of cases, the fresh-interpreter children that send and receive them
(:mod:`._child`, :mod:`._servers`, :mod:`._isolation`, :mod:`._interpreters`), ``check()``, the matrix
(:mod:`.matrix`), its rendering (:mod:`.render`, :mod:`.plot`) and the pytest plugin that records the cells
tests assert (:mod:`.pytest_plugin`)."""
