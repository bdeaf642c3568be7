"""Candle data: loading, validation and bundled samples."""

from pathlib import Path

from candleflow.data.loader import check_header, load_candles, slice_candles, validate_candles, write_candles
from candleflow.data.sample import SAMPLES, generate_candles, sample_candles
from candleflow.errors import ConfigError

__all__ = ["SAMPLES", "check_header", "check_source", "generate_candles", "load_candles", "sample_candles",
           "validate_candles", "write_candles"]


def load_source(source, *, workspace, file: str = "<strategy>", max_bytes: int | None = None):
    """Candles for a strategy's ``data`` section; relative paths are relative to ``workspace``.

    ``max_bytes`` bounds the data file (see :func:`~candleflow.data.loader.load_candles`).
    """
    if source.sample is not None:
        _check_sample(source.sample, file=file)
        return slice_candles(sample_candles(source.sample), start=source.start, end=source.end, file=source.sample)
    path = _source_path(source, workspace=workspace, file=file)
    return load_candles(path, format=source.format, start=source.start, end=source.end, max_bytes=max_bytes)


def check_source(source, *, workspace, file: str = "<strategy>") -> None:
    """Check a strategy's ``data`` section without loading it: the sample exists, or the file does and its header
    (a CSV's first line, a Parquet schema) names the candle columns (``candleflow validate``)."""
    if source.sample is not None:
        _check_sample(source.sample, file=file)
        return
    check_header(_source_path(source, workspace=workspace, file=file), format=source.format)


def _check_sample(sample: str, *, file: str) -> None:
    if sample not in SAMPLES:
        raise ConfigError(f"unknown sample '{sample}' (samples: {', '.join(SAMPLES)})", file=file, path="data.sample")


def _source_path(source, *, workspace, file: str) -> Path:
    """The data file of ``source`` (relative to ``workspace``); a ConfigError at ``data.path`` if it is missing."""
    path = Path(source.path)
    if not path.is_absolute():
        path = Path(workspace) / path
    if not path.is_file():
        raise ConfigError(f"data file '{source.path}' not found (relative paths start at the workspace {workspace})",
                          file=file, path="data.path")
    return path
