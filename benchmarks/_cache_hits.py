"""Child of ``cache.py``: what one on-disk cache hit costs, for whichever candleflow is on PYTHONPATH.

Run as ``PYTHONPATH=<a candleflow src> python _cache_hits.py STRATEGY.yaml --candles N ...``; it
does not import ``_common`` (which would put this checkout's ``src`` first), so the parent can
measure an older checkout's cache format (pickles) with the same code.  It runs the strategy
once cold into a temporary cache folder, then times, best of ``--repeat``:

* per entry, ``NodeCache(folder, memory=False).get(key)`` (a fresh cache each time, so the
  file is read, verified and decoded) and ``put`` into another folder (encode + atomic write);
* the warm re-run: ``run_compiled`` with a fresh ``NodeCache(folder)``, every node a disk hit,
  and the same with a shared in-memory cache, for reference.

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import time
from pathlib import Path


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("strategy", type=Path)
    parser.add_argument("--candles", type=int, default=8760)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    import candleflow
    from candleflow.backtest import load_data, prepare, run_compiled
    from candleflow.dag.cache import NodeCache
    from candleflow.data import generate_candles

    compiled, _ = prepare(args.strategy, workspace=args.strategy.parent)
    candles = load_data(compiled, generate_candles(args.candles, seed=args.seed))
    with_kind = "kind" in inspect.signature(NodeCache.get).parameters  # the pickle cache has no kind
    folder, other = tempfile.TemporaryDirectory(), tempfile.TemporaryDirectory()
    cold = run_compiled(compiled, candles, cache=NodeCache(folder.name), scheduler="sync")
    entries = {}
    for name, stat in cold.stats.items():
        options = {"kind": stat.kind} if with_kind else {}
        (path,) = Path(folder.name).rglob(f"{stat.key}.*")
        value = cold.values[name]
        read = best(lambda: NodeCache(folder.name, memory=False).get(stat.key, **options), args.repeat)
        write = best(lambda: NodeCache(other.name, memory=False).put(stat.key, value, **options), args.repeat)
        entries[name] = {"kind": stat.kind, "bytes": path.stat().st_size, "read": read, "write": write}

    def warm_disk():
        result = run_compiled(compiled, candles, cache=NodeCache(folder.name))
        assert all(s.cache == "hit" for s in result.stats.values())

    shared = NodeCache()
    run_compiled(compiled, candles, cache=shared)
    report = {"candleflow": str(Path(candleflow.__file__).parent), "entries": entries,
              "warm_disk": best(warm_disk, args.repeat),
              "warm_memory": best(lambda: run_compiled(compiled, candles, cache=shared), args.repeat)}
    folder.cleanup()
    other.cleanup()
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
