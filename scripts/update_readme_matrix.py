"""Copy the summary and fresh-process tables of compat-matrix.md into README.md (between markers).

Run after `pytest` or `anypickle matrix --format markdown --output compat-matrix.md`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"


def sections(markdown: str) -> str:
    """The '## Summary' and '## fresh process' sections, headings demoted one level."""
    keep = []
    for block in re.split(r"(?m)^(?=## )", markdown):
        title = block.splitlines()[0].lower() if block.strip() else ""
        if title.startswith("## summary") or title.startswith("## fresh process"):
            keep.append("#" + block.rstrip() + "\n")
    if not keep:
        raise SystemExit("compat-matrix.md has no Summary / fresh process sections")
    return "\n".join(keep)


def main() -> int:
    matrix = (ROOT / "compat-matrix.md").read_text()
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    if not rest:
        print("README.md has no matrix markers", file=sys.stderr)
        return 2
    readme_path.write_text(f"{head}{START}\n{sections(matrix)}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
