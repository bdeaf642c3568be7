"""Memo cache for node outputs, keyed by content hash; on-disk entries are verified and never run code.

A node's key is ``dask.base.tokenize`` of what determines its output: the
component's source hash (or the script file's bytes), its params and options,
and the keys of its upstream nodes, down to the candle data's fingerprint.  Equal
keys mean equal outputs, so a re-run recomputes only the nodes whose key
changed (e.g. changing fees changes only the evaluator's key).

Two layers: an in-process dict (shared by the runs given the same ``NodeCache``;
``candleflow run`` makes one per run, and a sweep uses neither layer: it merges equal
nodes by key inside its one Dask graph) and an optional folder of entry files.

An entry file ``<folder>/<key[:2]>/<key>.node`` is::

    MAGIC | sha256(body) | body,   body = header length (4 bytes, little endian) | header | streams

The header is JSON: the format version, the entry's own key, the node kind
(indicator, signal, evaluator), the value type and its description, and the length
of each Arrow IPC stream that follows (see :mod:`candleflow.dag.cache_codec`).  A
read checks, in this order, the magic, the checksum, the JSON, the version, the key,
the kind and the lengths, then decodes; any failure makes the entry a miss: the node
is recomputed and its entry rewritten.  Nothing in an entry is unpickled, so a file
planted in the cache folder can give wrong values at worst (whoever may write the
folder can also forge a checksum), never run code.  A value the codec cannot store
without pickle stays in the memory layer only.

Writes are atomic (temp file + rename), so an interrupted run never leaves a torn entry.
A folder that cannot be written (full disk, read-only, not creatable) turns writes off
for the rest of the run; one that cannot be read turns the disk layer off.  Each of
these events -- damaged entry, unwritable or unreadable folder, unstorable value --
warns once per ``NodeCache`` (once per run), never fails the run.

State: the memory dict and the set of warnings already given, both under one lock
(tasks finish on several threads), and the flags saying whether the folder is still
read and written.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from candleflow._atomic import write_bytes_atomic
from candleflow.dag.cache_codec import Unencodable, decode, encode
from candleflow.errors import warn

_MISSING = object()
MAGIC = b"candleflow-node\n"
FORMAT = 1
SUFFIX = ".node"
_DIGEST = 32  # sha256
_LENGTH = 4


class Damaged(ValueError):
    """An entry file that is not exactly what :meth:`NodeCache.put` wrote under this key."""


class NodeCache:
    """Content-addressed store of node outputs: memory first, then an optional folder of verified entries."""

    def __init__(self, folder: str | Path | None = None, *, memory: bool = True) -> None:
        self.folder = Path(folder) if folder else None
        self._memory: dict[str, Any] | None = {} if memory else None
        self._lock = threading.Lock()
        self._reading = self._writing = self.folder is not None
        self._warned: set[str] = set()

    def get(self, key: str, default: Any = _MISSING, *, kind: str | None = None) -> Any:
        """The value stored under ``key``; an on-disk entry must also have been stored for ``kind``."""
        if self._memory is not None:
            with self._lock:
                if key in self._memory:
                    return self._memory[key]
        if self._reading:
            value = self._read(key, kind)
            if value is not _MISSING:
                self._remember(key, value)
                return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def put(self, key: str, value: Any, *, kind: str | None = None) -> None:
        self._remember(key, value)
        if not self._writing:
            return
        try:
            data = entry_bytes(key, value, kind)
        except Unencodable as exc:
            self._warn("unencodable", f"node '{_node(key)}': its output is kept in memory only, not in the "
                                      f"on-disk cache ({exc}; the cache stores no pickles)")
            return
        try:
            write_bytes_atomic(self._path(key), data)
        except OSError as exc:
            self._writing = False
            self._warn("write", f"{self.folder}: cannot write the node cache ({_reason(exc)}); "
                                f"this run goes on without storing entries on disk")

    def _read(self, key: str, kind: str | None) -> Any:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return _MISSING
        except OSError as exc:
            self._reading = False
            self._warn("read", f"{self.folder}: cannot read the node cache ({_reason(exc)}); "
                               f"this run goes on without it")
            return _MISSING
        try:
            return read_entry(data, key, kind)
        except Damaged as exc:
            reason = str(exc)
        except Exception as exc:  # noqa: BLE001 -- a checksummed entry that does not decode: any error means damaged
            reason = f"undecodable: {type(exc).__name__}: {exc}"
        self._warn("damaged", f"{path}: damaged cache entry ({reason}); recomputing and replacing it "
                              f"(other damaged entries in this run are replaced without a warning)")
        try:
            path.unlink()  # rewritten by put() once the node is recomputed
        except OSError:
            pass  # a read-only folder: put() will say so
        return _MISSING

    def _remember(self, key: str, value: Any) -> None:
        if self._memory is not None:
            with self._lock:
                self._memory[key] = value

    def _warn(self, what: str, message: str) -> None:
        with self._lock:
            if what in self._warned:
                return
            self._warned.add(what)
        warn(message)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}{SUFFIX}"


def entry_bytes(key: str, value: Any, kind: str | None) -> bytes:
    """The entry file's bytes for ``value`` (raises :class:`~candleflow.dag.cache_codec.Unencodable`)."""
    value_type, description, streams = encode(value)
    header = json.dumps({"format": FORMAT, "key": key, "kind": kind, "type": value_type, "value": description,
                         "streams": [len(s) for s in streams]}, separators=(",", ":")).encode()
    body = b"".join([len(header).to_bytes(_LENGTH, "little"), header, *streams])
    return b"".join([MAGIC, hashlib.sha256(body).digest(), body])


def read_entry(data: bytes, key: str, kind: str | None) -> Any:
    """The value in an entry file's bytes, after checking it is intact and is ``key``'s; raises :class:`Damaged`."""
    start = len(MAGIC) + _DIGEST
    if not data.startswith(MAGIC):
        raise Damaged("not a candleflow cache entry")
    if len(data) < start + _LENGTH:
        raise Damaged("truncated")
    body = memoryview(data)[start:]
    if hashlib.sha256(body).digest() != data[len(MAGIC):start]:
        raise Damaged("checksum mismatch")
    size = int.from_bytes(body[:_LENGTH], "little")
    try:
        header = json.loads(bytes(body[_LENGTH:_LENGTH + size]))
    except ValueError as exc:
        raise Damaged(f"unreadable header: {exc}") from None
    if type(header) is not dict or header.get("format") != FORMAT:
        raise Damaged(f"format {header.get('format') if type(header) is dict else '?'}, expected {FORMAT}")
    if header.get("key") != key:
        raise Damaged(f"it holds the entry of key {header.get('key')!r}")
    if kind is not None and header.get("kind") != kind:
        raise Damaged(f"it holds a {header.get('kind')} output, expected {kind}")
    lengths = header.get("streams")
    if type(lengths) is not list or any(type(n) is not int or n < 0 for n in lengths) \
            or _LENGTH + size + sum(lengths) != len(body):
        raise Damaged("stream lengths do not match the file")
    streams, offset = [], _LENGTH + size
    for n in lengths:
        streams.append(body[offset:offset + n])
        offset += n
    return decode(header.get("type"), header.get("value"), streams)


def _node(key: str) -> str:
    return key.rsplit("-", 1)[0]


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
