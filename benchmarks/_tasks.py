"""Importable task functions for the executor benchmark (the stdlib pool needs them importable)."""


def tiny(x):
    return x + 1
