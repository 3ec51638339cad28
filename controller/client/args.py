"""Argument types shared by the commands that talk to the daemon."""

from __future__ import annotations

import argparse
import math


def positive(text: str) -> float:
    """A finite number above 0 (seconds, kWh …); argparse's error names what was wrong."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value
