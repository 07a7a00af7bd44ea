"""How a probe reports its result: the JSON on stdout, and also in `--output` when given, with the command line's
settings recorded in it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def settings_of(args: argparse.Namespace) -> dict:
    """The parsed command line as JSON-ready values (paths as strings)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def print_and_save(result: dict, output: Path | None) -> None:
    text = json.dumps(result, indent=1)
    print(text)
    if output is not None:
        output.write_text(text + "\n")
