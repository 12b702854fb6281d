"""CSV files written with one precision policy, so every table marketsim writes reads cleanly.

A float is written with 15 significant digits (``%.15g``): the most a double carries exactly, so the noise of
binary arithmetic in the 16th and 17th digits (``2716.2000000000003``) is gone while every value stays within
one part in 10^15 of the number computed; a whole number is written without a decimal part (``20000``, not
``20000.0``), so counts read as counts. NaN is an empty cell, infinities are ``inf`` / ``-inf``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FLOAT_FORMAT", "write_csv"]

FLOAT_FORMAT = "%.15g"  # 15 significant digits: exact for a double's decimal range, no trailing zeros


def write_csv(frame: pd.DataFrame, path: str | Path, index: bool = False) -> Path:
    """Write ``frame`` to ``path`` as CSV with the precision policy above; ``index`` keeps the row labels."""
    frame.to_csv(path, index=index, float_format=FLOAT_FORMAT)
    return Path(path)
