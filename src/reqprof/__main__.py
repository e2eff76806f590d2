"""``python -m reqprof``: the command line (see reqprof.cli)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
