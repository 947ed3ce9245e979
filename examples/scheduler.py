"""A taskloaf-style scheduler: closures defined in this script run in worker processes, resolving their worker by name.

Each task is a closure over ``here``, the scheduler's stand-in for "the worker I run on". It is sent
with ``anypickle.dumps(task, context={"worker": here})``: ``here`` does not travel, and on arrival the
name resolves to the receiving worker's own ``Worker`` (its name, its private cache). Everything else
a task uses travels by value with it, and the worker processes start from ``anypickle.wrap(worker_loop)``:
no task looks anything up in this script on the worker's side.

Run it: ``python examples/scheduler.py``.
"""

from __future__ import annotations

import multiprocessing

import anypickle


class Worker:
    """What a task can use where it runs: the worker's name and a cache private to that process."""

    def __init__(self, name):
        self.name = name
        self.cache = {}


def worker_loop(name, conn):
    """Runs in a worker process: load each task with this worker as its context, run it, send the result."""
    me = Worker(name)
    while data := conn.recv_bytes():  # an empty message is the scheduler's stop signal
        task = anypickle.loads(data, context={"worker": me})
        conn.send_bytes(anypickle.dumps(task()))


class Scheduler:
    """Starts workers, deals tasks round-robin, and gathers results in submission order."""

    def __init__(self, n_workers):
        ctx = multiprocessing.get_context("spawn")
        self.here = Worker("scheduler")
        self.conns, self.processes = [], []
        for i in range(n_workers):
            mine, theirs = ctx.Pipe()
            process = ctx.Process(target=anypickle.wrap(worker_loop), args=(f"worker-{i}", theirs))
            process.start()
            self.conns.append(mine)
            self.processes.append(process)

    def run(self, tasks):
        for i, task in enumerate(tasks):
            self.conns[i % len(self.conns)].send_bytes(anypickle.dumps(task, context={"worker": self.here}))
        return [anypickle.loads(self.conns[i % len(self.conns)].recv_bytes()) for i in range(len(tasks))]

    def close(self):
        for conn in self.conns:
            conn.send_bytes(b"")
        for process in self.processes:
            process.join()


def main():
    scheduler = Scheduler(n_workers=2)
    here = scheduler.here
    sentences = ["a taskloaf scheduler", "ships closures to workers", "that need nothing from this script",
                 "each worker keeps its own cache"]

    def count_words(sentence):
        def task():
            # `here` is whichever worker runs this: resolved from its context on arrival.
            here.cache[sentence] = len(sentence.split())
            return here.name, here.cache[sentence], len(here.cache)
        return task

    counted = scheduler.run([count_words(s) for s in sentences])
    for (worker, words, cached), sentence in zip(counted, sentences):
        print(f"{worker}: {words} words in {sentence!r} ({cached} cached there)")

    counts = [words for _, words, _ in counted]
    [(worker, total)] = scheduler.run([lambda: (here.name, sum(counts))])
    print(f"total words: {total} (summed on {worker})")
    scheduler.close()


if __name__ == "__main__":
    main()
