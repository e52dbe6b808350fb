"""Deployment tests: docker-compose.yml, the image, start-up steps, health and logs."""

from __future__ import annotations

import sys
from pathlib import Path

# Test modules import their helpers from ``compose_support`` beside this file; make that
# work under every pytest import mode (``importlib`` does not put test directories on
# sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
