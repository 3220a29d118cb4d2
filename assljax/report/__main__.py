"""``python -m assljax.report DIR [DIR ...] --out OUT``: bad input is one line, exit code 2."""

from __future__ import annotations

import sys

from assljax.report import main

if __name__ == "__main__":
  try:
    sys.exit(main())
  except ValueError as e:
    print(f"assljax report: error: {e}", file=sys.stderr)
    sys.exit(2)
