"""``python -m probe.cli``: the ``probe`` command without the console script (the lab runs it so)."""

from __future__ import annotations

import sys

from probe.cli import main

if __name__ == "__main__":
    sys.exit(main())
