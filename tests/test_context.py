"""Receiver context: objects marked by the sender travel as names and are resolved from the receiver's context."""

from __future__ import annotations

import pytest

import anypickle
from anypickle import DecodeError, UsageError
from anypickle import _envelope as env
from anypickle.lab.runner import run_script


class Handle:
    """Stands for a worker's own resource (a connection, a scheduler handle)."""

    def __init__(self, name):
        self.name = name


@pytest.mark.parametrize("backend", ["auto", "pickle", "cloudpickle", "dill"])
def test_context_objects_are_replaced_by_the_receivers(backend):
    """Every occurrence of the sender's object (by identity) becomes the receiver's object of that name."""
    mine, theirs = Handle("sender"), Handle("receiver")
    obj = {"first": mine, "again": [mine], "copy": Handle("sender")}
    data = anypickle.dumps(obj, backend=backend, context={"conn": mine})
    assert data[6] & env.CONTEXT
    back = anypickle.loads(data, context={"conn": theirs})
    assert back["first"] is theirs and back["again"][0] is theirs
    assert back["copy"] is not theirs and back["copy"].name == "sender"  # equal but not identical: travels


def test_auto_closure_over_context_object():
    """A lambda closing over a context object goes by a pickler (marshal cannot carry references)."""
    conn = Handle("sender")
    data = anypickle.dumps(lambda: conn.name, context={"conn": conn})
    assert anypickle.Backend(data[5]) is anypickle.Backend.CLOUDPICKLE
    assert anypickle.loads(data, context={"conn": Handle("worker")})() == "worker"


def test_missing_name_on_receiver_is_a_decode_error_naming_it():
    """A receiver without the name gets DecodeError naming it, with or without a context of its own."""
    db = Handle("db")
    data = anypickle.dumps([Handle("x"), db], context={"db": db})
    with pytest.raises(DecodeError, match=r"'db'.*none was given"):
        anypickle.loads(data)
    with pytest.raises(DecodeError, match=r"'db'.*it has \['cache'\]"):
        anypickle.loads(data, context={"cache": Handle("c")})


def test_unused_context_adds_no_flag():
    """When no context object occurs, the envelope is plain and loads without a context."""
    data = anypickle.dumps({"a": 1}, context={"conn": Handle("x")})
    assert not data[6] & env.CONTEXT
    assert anypickle.loads(data) == {"a": 1}


@pytest.mark.parametrize(
    ("context", "options", "message"),
    [
        ({"n": 5}, {}, "matched by identity"),
        ({1: Handle("x")}, {}, "names must be str"),
        ([Handle("x")], {}, "must be a mapping"),
        ({"conn": Handle("x")}, {"backend": "marshal"}, "needs a pickler"),
    ],
)
def test_bad_context_is_a_usage_error(context, options, message):
    """Atoms (matched by identity they would hit unrelated values), non-str names and marshal are refused."""
    with pytest.raises(UsageError, match=message):
        anypickle.dumps([1], context=context, **options)


def test_same_object_under_two_names_is_refused():
    """One object under two names is ambiguous on the receiver."""
    h = Handle("x")
    with pytest.raises(UsageError, match="same object"):
        anypickle.dumps(h, context={"a": h, "b": h})


def test_signed_payload_with_context():
    """Signing covers a context payload; it loads with the key and the receiver's context."""
    conn = Handle("sender")
    data = anypickle.dumps([conn], context={"conn": conn}, key=b"k" * 32)
    assert anypickle.loads(data, key=b"k" * 32, context={"conn": "receiver's"}) == ["receiver's"]


SENDER = """
import json, sqlite3, sys
import anypickle

class Report:
    # A __main__ class whose instances hold a live database connection (which cannot be pickled).
    def __init__(self, db, table):
        self.db = db
        self.table = table
    def run(self):
        return [row[0] for row in self.db.execute(f"select name from {self.table} order by name")]

if __name__ == "__main__":
    db = sqlite3.connect(":memory:")
    task = Report(db, "ships")
    try:
        anypickle.dumps(task)
        refused = False
    except anypickle.EncodeError:
        refused = True
    open(sys.argv[1], "wb").write(anypickle.dumps(task, context={"db": db}))
    print(json.dumps({"refused_without_context": refused}))
"""

RECEIVER = """
import json, sqlite3, sys
import anypickle

db = sqlite3.connect(":memory:")
db.execute("create table ships (name text)")
db.executemany("insert into ships values (?)", [("Tantive IV",), ("Executor",)])
data = open(sys.argv[1], "rb").read()
task = anypickle.loads(data, context={"db": db})
try:
    anypickle.loads(data)
    missing = None
except anypickle.DecodeError as exc:
    missing = str(exc)
print(json.dumps({"rows": task.run(), "same_db": task.db is db, "type": type(task).__name__, "missing": missing}))
"""


def test_fresh_interpreter_resolves_its_own_connection(tmp_path):
    """A script's task holding a sqlite3 connection runs in a fresh interpreter against that interpreter's database."""
    payload = tmp_path / "task.bin"
    sent = run_script(tmp_path / "sender", SENDER, args=[str(payload)])
    assert sent == {"refused_without_context": True}
    got = run_script(tmp_path / "receiver", RECEIVER, args=[str(payload)])
    assert got["rows"] == ["Executor", "Tantive IV"]
    assert got["same_db"] is True and got["type"] == "Report"
    assert "'db'" in got["missing"] and "context" in got["missing"]
