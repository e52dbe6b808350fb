"""Make the shared behaviour suite (``behaviours.py``) importable by its test modules.

The project runs pytest with ``--import-mode=importlib``, which does not put test
directories on ``sys.path``; the contract tests import ``behaviours`` by name.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
