"""``python -m anypickle``: the command line."""

from .cli import main

raise SystemExit(main())
