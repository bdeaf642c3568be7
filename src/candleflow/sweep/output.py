"""Write a sweep's table atomically (temp file + rename) as CSV or Parquet, chosen by suffix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from candleflow._atomic import atomic_path, write_text_atomic
from candleflow.errors import ConfigError
from candleflow.output_paths import check_file

SUFFIXES = (".csv", ".parquet")


def check_output(path: str | Path) -> Path:
    """``path`` if its suffix names a format we write and a file can be written there; checked before a sweep."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"--out must end in .csv or .parquet, not '{path.suffix or path.name}'", file=str(path))
    return check_file(path, "--out")


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` without its index; a crash leaves the old file or none, never half of one."""
    path = check_output(path)
    try:
        if path.suffix.lower() == ".csv":
            write_text_atomic(path, frame.to_csv(index=False))
        else:
            with atomic_path(path) as tmp:
                frame.to_parquet(tmp, index=False)
    except OSError as exc:  # a read-only folder, a file in the way, a full disk: one line, not a traceback
        culprit = f" ({exc.filename})" if exc.filename and Path(exc.filename) != path else ""
        raise ConfigError(f"cannot write the results: {exc.strerror or exc}{culprit}", file=str(path)) from None
    return path
