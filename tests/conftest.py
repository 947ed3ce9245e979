import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

# Collects the cells tests/test_matrix.py records and writes compat-matrix.json / .md at session end.
pytest_plugins = ["anypickle.lab.pytest_plugin"]
