"""Memo cache for node outputs, keyed by content hash.

A node's key is ``dask.base.tokenize`` of what determines its output: the
component's source hash (or the script file's bytes), its params and options,
and the keys of its upstream nodes, down to the candle data's fingerprint.  Equal
keys mean equal outputs, so a re-run recomputes only the nodes whose key
changed (e.g. changing fees changes only the evaluator's key).

Two layers: an in-process dict (shared by every run in this process, so a
parameter sweep reuses indicators) and an optional folder of pickles, written
atomically (temp file + rename) so an interrupted run never leaves a torn entry.
"""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

from candleflow._atomic import write_bytes_atomic

_MISSING = object()


class NodeCache:
    """Content-addressed store of node outputs: memory first, then an optional folder."""

    def __init__(self, folder: str | Path | None = None, *, memory: bool = True) -> None:
        self.folder = Path(folder) if folder else None
        self._memory: dict[str, Any] | None = {} if memory else None
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if self._memory is not None:
            with self._lock:
                if key in self._memory:
                    return self._memory[key]
        if self.folder is not None:
            path = self._path(key)
            try:
                value = pickle.loads(path.read_bytes())
            except FileNotFoundError:
                pass
            except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, OSError):
                path.unlink(missing_ok=True)  # unreadable entry (e.g. from another version): recompute it
            else:
                self._remember(key, value)
                return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def put(self, key: str, value: Any) -> None:
        self._remember(key, value)
        if self.folder is not None:
            write_bytes_atomic(self._path(key), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def _remember(self, key: str, value: Any) -> None:
        if self._memory is not None:
            with self._lock:
                self._memory[key] = value

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.pkl"
