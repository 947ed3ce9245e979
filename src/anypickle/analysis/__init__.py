"""The analysis: what an object needs to reach a fresh interpreter (:mod:`._needs`), which modules a
receiver can import (:mod:`._modules`), and ``explain`` (:mod:`._explain`), which reports both. It
never serializes anything; the facade and the backends ask it."""
