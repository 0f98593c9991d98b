"""``python -m steptrail``: the same as the ``steptrail`` command."""

import sys

from steptrail.api.cli import main

if __name__ == "__main__":
    sys.exit(main())
