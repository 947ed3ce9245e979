"""Code shipped by value keeps its file name, line numbers and source lines in receivers' tracebacks.

The sender is a real script; its folder is deleted before the receiver, a fresh interpreter in another
folder, loads the payloads. Nothing on the receiver can read the sender's file: every source line a
traceback shows there travelled in the envelope (see anypickle.backends._lines).
"""

from __future__ import annotations

import shutil
import struct
import textwrap
from pathlib import Path

import cloudpickle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anypickle
from anypickle import _envelope as env
from anypickle.backends import _lines
from anypickle.lab import _interpreters
from anypickle.lab.runner import run_script

SENDER = '''
import json, sys
import anypickle

SCALE = 3


class Account:
    def withdraw(self, amount):
        if amount > 10:
            raise ValueError(f"refused: {amount}")
        return amount


def refuse(x):
    y = x * SCALE
    raise KeyError("no entry for %d" % y)


def plain_refuse(x):
    raise LookupError("plain %d" % x)


def outer(n):
    def inner(k):
        return 1 // (k - n)

    return inner


def multiline(a):
    return divmod(
        a,
        0,
    )


account = Account()
out = sys.argv[1]
payloads = {
    "marshal": anypickle.dumps(refuse),
    "marshal-nested": anypickle.dumps(outer(4)),
    "cloudpickle+": anypickle.dumps(account.withdraw),
    "cloudpickle+-multiline": anypickle.dumps([multiline]),
    "dill": anypickle.dumps(plain_refuse, backend="dill"),  # raw dill ships no globals (recurse=False)
    "portable": anypickle.dumps(refuse, backend="portable"),
    "portable-method": anypickle.dumps(account.withdraw, backend="portable"),
}
backends = {}
for name, data in payloads.items():
    open(f"{out}/{name}.apk", "wb").write(data)
    backends[name] = anypickle.Backend(data[5]).label
import cloudpickle
print(json.dumps({"file": __file__, "backends": backends, "cloudpickle": cloudpickle.__version__}))
'''

RECEIVER = '''
import glob, json, os, sys, traceback
import anypickle, cloudpickle

calls = {
    "marshal": lambda f: f(2),
    "marshal-nested": lambda f: f(4),
    "cloudpickle+": lambda f: f(11),
    "cloudpickle+-multiline": lambda f: f[0](7),
    "dill": lambda f: f(2),
    "portable": lambda f: f(2),
    "portable-method": lambda f: f(11),
}
out = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.apk"))):
    name = os.path.basename(path)[:-4]
    obj = anypickle.loads(open(path, "rb").read())
    try:
        calls[name](obj)
    except Exception:
        out[name] = traceback.format_exc()
    else:
        out[name] = "did not raise"
out["cloudpickle"] = cloudpickle.__version__
print(json.dumps(out))
'''

SENDER_TEXT = textwrap.dedent(SENDER).lstrip("\n")


def _line_of(text: str) -> int:
    """The line number of ``text`` in the sender's file (the first line holding it)."""
    return next(i for i, line in enumerate(SENDER_TEXT.splitlines(), 1) if text in line)


# The line each traceback must show as the innermost frame.
EXPECTED = {
    "marshal": 'raise KeyError("no entry for %d" % y)',
    "marshal-nested": "return 1 // (k - n)",
    "cloudpickle+": 'raise ValueError(f"refused: {amount}")',
    "cloudpickle+-multiline": "return divmod(",
    "dill": 'raise LookupError("plain %d" % x)',
    "portable": 'raise KeyError("no entry for %d" % y)',
    "portable-method": 'raise ValueError(f"refused: {amount}")',
}


# The run uses this environment's cloudpickle, and the other of the two releases that differ in what
# they write as a code's file name (3.1.2 its real name, 3.1.3 "<dynamic-code>"), sender and receiver alike.
OTHER_CLOUDPICKLE = "3.1.2" if cloudpickle.__version__ != "3.1.2" else "3.1.3"


@pytest.fixture(scope="module", params=["installed", OTHER_CLOUDPICKLE])
def shipped(request, tmp_path_factory):
    """Run the sender script, delete its folder, then load and call every payload in a fresh receiver."""
    child = None  # this interpreter as it is
    if request.param != "installed":
        try:  # the other cloudpickle release first on the path, sender and receiver alike
            child = _interpreters.prepare_versions({"cloudpickle": request.param})
        except RuntimeError as exc:
            pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("tracebacks")
    sender, payloads = root / "sender", root / "payloads"
    payloads.mkdir()
    sent = run_script(sender, SENDER_TEXT, args=[str(payloads)], receiver=child, name="task_script.py")
    shutil.rmtree(sender)
    assert not Path(sent["file"]).exists()
    return sent, run_script(root / "receiver", RECEIVER, args=[str(payloads)], receiver=child), payloads


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_receiver_traceback_shows_file_line_and_source(shipped, name):
    """Every by-value route (marshal, cloudpickle+, dill, portable) shows the sender's file, line and text."""
    sent, tracebacks, _ = shipped
    text = EXPECTED[name]
    lineno = _line_of(text)
    tb = tracebacks[name]
    assert f'File "{sent["file"]}", line {lineno}, in ' in tb, tb
    assert text in tb, tb
    assert "<dynamic-code>" not in tb


def test_each_route_used_the_backend_it_names(shipped, request):
    """The routes really are the backends the test names (auto could change its mind), with the cloudpickle named."""
    sent, tracebacks, _ = shipped
    wanted = cloudpickle.__version__ if "installed" in request.node.name else OTHER_CLOUDPICKLE
    assert sent["cloudpickle"] == tracebacks["cloudpickle"] == wanted
    assert sent["backends"] == {
        "marshal": "marshal", "marshal-nested": "marshal", "cloudpickle+": "cloudpickle",
        "cloudpickle+-multiline": "cloudpickle", "dill": "dill", "portable": "pickle", "portable-method": "pickle",
    }


def test_source_lines_travel_in_the_envelope_and_cost_little(shipped):
    """Only the lines the code can report travel: for a three-line function, a few hundred bytes at most."""
    sent, _, payloads = shipped
    header = env.parse(memoryview((payloads / "marshal.apk").read_bytes()))
    assert header.source is not None
    files = _lines.decode(header.source)
    assert list(files) == [sent["file"]]
    first = _line_of("def refuse(x):")
    # body and raise: not the def line (only the frame's prologue is on it), nor the rest of the file
    assert set(files[sent["file"]]) == {first + 1, first + 2}
    assert len(header.source) < 200


def test_a_receiver_that_reships_the_code_passes_its_lines_on(tmp_path):
    """A worker that received a function and ships it on (a sub-task) still sends the source lines."""
    folder = tmp_path / "sender"
    folder.mkdir()
    (folder / "relay_script.py").write_text("def fail(x):\n    return 1 // x\n")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(folder)!r})
        import anypickle, relay_script
        relay_script.fail.__module__ = "__main__"  # as if defined in the script: ships by value
        open(sys.argv[1], "wb").write(anypickle.dumps(relay_script.fail))
    """)
    first = tmp_path / "first.apk"
    run_script(tmp_path / "first", script, args=[str(first)])
    shutil.rmtree(folder)
    relay = textwrap.dedent("""
        import sys, anypickle
        f = anypickle.loads(open(sys.argv[1], "rb").read())
        open(sys.argv[2], "wb").write(anypickle.dumps(f))
    """)
    second = tmp_path / "second.apk"
    run_script(tmp_path / "relay", relay, args=[str(first), str(second)])
    final = textwrap.dedent("""
        import json, sys, traceback, anypickle
        f = anypickle.loads(open(sys.argv[1], "rb").read())
        try:
            f(0)
        except ZeroDivisionError:
            print(json.dumps(traceback.format_exc()))
    """)
    out = run_script(tmp_path / "final", final, args=[str(second)])
    assert "relay_script.py\", line 2, in fail" in out and "return 1 // x" in out, out


def test_cloudpickle_plus_keeps_the_file_name_cloudpickle_drops():
    """cloudpickle 3.1.3 writes "<dynamic-code>" as every shipped code's file; anypickle's pickler keeps the name."""
    def f():
        return 1

    f.__module__ = "__main__"
    g = anypickle.loads(anypickle.dumps([f]))[0]
    assert g.__code__.co_filename == f.__code__.co_filename == __file__
    raw = cloudpickle.loads(cloudpickle.dumps(f))
    assert raw.__code__.co_filename in (__file__, "<dynamic-code>")  # 3.1.2 keeps it, 3.1.3 does not


def test_lines_of_two_payloads_from_one_file_are_merged():
    """Two payloads bring lines of one file at different times: both stay visible to linecache."""
    import linecache

    name = "/nonexistent/anypickle-test-merge.py"
    _lines.register(_lines.encode({name: {3: "first = 1\n"}}))
    assert linecache.getline(name, 3) == "first = 1\n"
    _lines.register(_lines.encode({name: {7: "second = 2\n"}}))
    assert linecache.getline(name, 7) == "second = 2\n"
    assert linecache.getline(name, 3) == "first = 1\n"


def test_a_real_file_on_the_receiver_wins_over_received_lines(tmp_path):
    """Like any lazily cached module source in Python: the receiver's own file is read when it exists."""
    import linecache

    path = tmp_path / "exists.py"
    path.write_text("real = 1\n")
    _lines.register(_lines.encode({str(path): {1: "received = 1\n"}}))
    assert linecache.getline(str(path), 1) == "real = 1\n"


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=30),
                       st.dictionaries(st.integers(1, 10**6), st.text(max_size=80), max_size=5), max_size=4))
def test_encoding_round_trips(files):
    """encode/decode keep every file name, line number and text (surrogates included)."""
    assert _lines.decode(_lines.encode(files)) == {k: v for k, v in files.items()} if files else True


@given(st.binary(max_size=64))
def test_a_malformed_block_never_fails_a_load(block):
    """register() ignores a block it cannot read; the lines are a courtesy, never an error."""
    try:
        _lines.decode(block)
        readable = bool(block)
    except (ValueError, IndexError):
        readable = False
    assert _lines.register(block) is None  # never raises
    if readable:  # a block it can read is offered
        assert block in _lines._registered


def test_a_corrupted_source_section_length_is_a_decode_error():
    """The section's length is checked: a lie about it is a clean DecodeError, not a crash."""
    data = bytearray(anypickle.dumps(lambda: 1))
    header = env.parse(memoryview(bytes(data)))
    assert header.source is not None
    at = header.header_length - 4 - len(header.source) - 4  # the u32 length before the lines
    struct.pack_into("<I", data, at, 10**9)
    with pytest.raises(anypickle.DecodeError):
        anypickle.loads(bytes(data))


def test_a_worker_receiving_the_same_function_in_every_task_keeps_one_copy(tmp_path):
    """Registering is bounded: the same lines a thousand times are kept once; a real file keeps nothing."""
    name = "/nonexistent/anypickle-test-bounded.py"
    for _ in range(1000):
        _lines.register(_lines.encode({name: {1: "x = 1\n"}}))
    assert len(_lines._pending[name]) == 1
    import linecache

    path = tmp_path / "real.py"
    path.write_text("real = 1\n")
    linecache.getline(str(path), 1)  # linecache holds the real file now
    for _ in range(10):
        _lines.register(_lines.encode({str(path): {1: "received = 1\n"}}))
    assert str(path) not in _lines._pending


def test_the_same_block_after_linecache_was_cleared_is_offered_again():
    """Loading a function again skips the work, unless linecache lost the lines meanwhile (clearcache)."""
    import linecache

    name = "/nonexistent/anypickle-test-cleared.py"
    block = _lines.encode({name: {2: "again = 2\n"}})
    _lines.register(block)
    assert linecache.getline(name, 2) == "again = 2\n"
    linecache.clearcache()
    _lines.register(block)
    assert linecache.getline(name, 2) == "again = 2\n"


WORKER_SCRIPT = textwrap.dedent('''
    import json, linecache, os, sys, traceback
    import anypickle


    class Refused(Exception):
        pass


    def refuse(x):
        y = x + 1
        raise Refused("no entry for %d" % y)


    if __name__ == "__main__":
        linecache.getlines(__file__)  # the sender knows its source (as a notebook knows its cells)...
        os.remove(__file__)  # ...but from here on no other process can read it: the lines must travel
        with anypickle.ProcessPoolExecutor(1, mp_context=sys.argv[1]) as pool:
            try:
                pool.submit(refuse, 1).result()
            except Refused as exc:
                print(json.dumps({"remote": str(exc.__cause__)}))
''').lstrip("\\n")


@pytest.mark.parametrize("context", ["spawn", "forkserver"])
def test_a_pool_worker_traceback_shows_the_source_of_a_deleted_script(tmp_path, context):
    """The executor's remote traceback shows file, line and text, though no worker can read the script."""
    remote = run_script(tmp_path, WORKER_SCRIPT, args=[context], name="deleted_script.py")["remote"]
    assert not (tmp_path / "deleted_script.py").exists()
    lineno = WORKER_SCRIPT.splitlines().index('    raise Refused("no entry for %d" % y)') + 1
    assert f'deleted_script.py", line {lineno}, in refuse' in remote, remote
    assert 'raise Refused("no entry for %d" % y)' in remote, remote


def _files_or_none(block: bytes):
    try:
        return list(_lines._files(block))
    except (ValueError, IndexError):
        return None


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=140), st.dictionaries(st.integers(1, 10**6), st.text(max_size=300), max_size=60),
                       min_size=1, max_size=3),
       st.integers(0, 8), st.binary(max_size=3))
def test_the_inline_table_reads_what_the_generator_reads(files, cut, tail):
    """register's inline reading of a one-file table (names under 128 bytes, sections one or two
    varint bytes long) agrees with _files on every block, cut, extended or not; None when malformed."""
    block = _lines.encode(files)
    for variant in (block, block[:len(block) - cut], block + tail, block[:3] + tail):
        assert _lines._table(variant) == _files_or_none(variant), variant
