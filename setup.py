"""Builds the optional C helper anypickle.safe._opwalk; all other metadata lives in pyproject.toml.

``optional=True``: when no C compiler is available the install still succeeds, and safe loading
falls back to running its pure-Python static pass first (see docs/security.md, "Speed").
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "anypickle.safe._opwalk",
            sources=["src/anypickle/safe/_opwalk.c", "src/anypickle/safe/_planload.c"],
            optional=True,
        )
    ]
)
