"""Candle data: loading, validation and bundled samples."""

from pathlib import Path

from candleflow.data.loader import load_candles, slice_candles, validate_candles, write_candles
from candleflow.data.sample import SAMPLES, generate_candles, sample_candles
from candleflow.errors import ConfigError

__all__ = ["SAMPLES", "generate_candles", "load_candles", "sample_candles", "validate_candles", "write_candles"]


def load_source(source, *, workspace, file: str = "<strategy>", max_bytes: int | None = None):
    """Candles for a strategy's ``data`` section; relative paths are relative to ``workspace``.

    ``max_bytes`` bounds the data file (see :func:`~candleflow.data.loader.load_candles`).
    """
    if source.sample is not None:
        if source.sample not in SAMPLES:
            raise ConfigError(f"unknown sample '{source.sample}' (samples: {', '.join(SAMPLES)})",
                              file=file, path="data.sample")
        return slice_candles(sample_candles(source.sample), start=source.start, end=source.end, file=source.sample)
    path = Path(source.path)
    if not path.is_absolute():
        path = Path(workspace) / path
    if not path.is_file():
        raise ConfigError(f"data file '{source.path}' not found (relative paths start at the workspace {workspace})",
                          file=file, path="data.path")
    return load_candles(path, format=source.format, start=source.start, end=source.end, max_bytes=max_bytes)
