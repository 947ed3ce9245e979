"""The matrix lab: the catalogue of cases, the one fresh-interpreter runner that sends and receives them
(:mod:`.runner`, its child side :mod:`._child`, the interpreters it finds :mod:`._interpreters`), ``check()``, the matrix
(:mod:`.matrix`), its rendering (:mod:`.render`, :mod:`.plot`) and the pytest plugin that records the cells
tests assert (:mod:`.pytest_plugin`)."""

__all__ = ["CASE_ERROR", "CLEAR_ERROR", "DUMPS_FAILS", "LOADS_FAILS", "OK", "OUTCOMES", "SKIPPED", "WRONG_RESULT"]

# The one outcome vocabulary of a cell (catalogue expectations, children's answers, check(), the
# matrix document, its rendering): the strings are what matrix JSON/CSV files hold.
OK = "ok"
DUMPS_FAILS = "dumps fails"
LOADS_FAILS = "loads fails"
WRONG_RESULT = "wrong result"
CLEAR_ERROR = "clear error"
OUTCOMES = (OK, DUMPS_FAILS, LOADS_FAILS, WRONG_RESULT, CLEAR_ERROR)
"""The outcomes a catalogue case may expect and a receiver may report."""
SKIPPED = "skipped"
"""A cell not run: the sender or the receiver lacks what the case requires."""
CASE_ERROR = "catalogue error"
"""A cell not run: the case's own script failed on the sender."""
