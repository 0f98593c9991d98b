"""Command-line options shared by every ``steptrail`` command that opens the store."""

from __future__ import annotations

import argparse
import os


def add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=os.environ.get("STEPTRAIL_DATA_DIR", ".steptrail"))
    p.add_argument(
        "--store",
        default=os.environ.get("STEPTRAIL_STORE"),
        help="sqlite (default) or postgresql://user@host:port/db[?schema=NAME]",
    )
