"""``python -m harness.simulator``: serve the simulator in the foreground."""

from __future__ import annotations

import sys

from harness.simulator.server import main

if __name__ == "__main__":
    sys.exit(main())
