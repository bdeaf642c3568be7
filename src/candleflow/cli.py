"""The ``candleflow`` command line.

Each command imports what it needs when it runs, so ``candleflow --help`` and
usage errors answer at once instead of after loading pandas, Dask and pydantic
(about a second).

User errors (:class:`~candleflow.errors.CandleflowError`) print one line on
stderr and exit with code 2; ``--debug`` adds the traceback.  Warnings
(:class:`~candleflow.errors.CandleflowWarning`: a fallback, the run goes on) print
one line ``warning: ...`` on stderr each.  Ctrl-C exits 130
and, because every output file is written atomically, leaves no partial files.

Every output path a command was given is checked before its work starts
(:mod:`candleflow.output_paths`), and each write runs inside
:func:`~candleflow.output_paths.writing`, so a full disk is one line naming the path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Optional

import click
import typer

from candleflow.errors import CandleflowError, CandleflowWarning, ConfigError, warn

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Backtest trading strategies declared as YAML graphs.")
_state = {"debug": bool(os.environ.get("CANDLEFLOW_DEBUG"))}


# Options shared by the commands that compile a strategy.
SetOption = Annotated[Optional[list[str]], typer.Option("--set", help="Template variable NAME=VALUE (repeatable).")]
WorkspaceOption = Annotated[Optional[Path], typer.Option(help="Workspace folder (default: found from the strategy).")]
ComponentsOption = Annotated[Optional[list[Path]], typer.Option(
    "--components", help="Extra folder of @indicator/@signal components (repeatable).")]
MaxDataSizeOption = Annotated[Optional[str], typer.Option(
    "--max-data-size", help="Largest data file (a CSV's text) to read, e.g. 4G or 500M (default: 1G).")]


def _max_data_bytes(text: str | None) -> int | None:
    from candleflow.data.loader import parse_size  # lazy: see the module docstring

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise ConfigError(f"--max-data-size: {exc}") from None


@app.callback()
def _global(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for user errors.")) -> None:
    _state["debug"] = _state["debug"] or debug


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``["fast=10", "name=x"]`` -> ``{"fast": 10, "name": "x"}`` (values parsed as YAML scalars)."""
    import yaml  # lazy: see the module docstring

    from candleflow.config.loader import StrictSafeLoader, YamlLimitError  # lazy: see the module docstring

    out: dict[str, Any] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set expects NAME=VALUE, got '{item}'")
        try:
            out[key.strip()] = yaml.load(value, Loader=StrictSafeLoader) if value else ""  # noqa: S506 - safe
        except YamlLimitError as exc:  # the value itself may be huge: name the problem, not the value
            raise ConfigError(f"--set {key.strip()}: {exc.problem}") from None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"--set {key.strip()}: value {value!r} is not valid YAML ({problem}); "
                              f"quote it, e.g. --set '{key.strip()}=\"{value}\"'") from None
    return out


def script_options_from(*, timeout: float, workers: int | None, verbose: bool, isolation: str = "warm"):
    """The typed script options of ``--timeout``/``--script-workers``/``-v``/``--isolation``, or a one-line
    ConfigError."""
    from candleflow.vocab import ScriptOptions  # lazy: see the module docstring

    if not timeout > 0 or timeout == float("inf"):
        raise ConfigError(f"--timeout must be a number of seconds above 0, got {timeout:g}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--script-workers must be at least 1, got {workers}")
    if isolation not in ("warm", "process"):
        raise ConfigError(f"--isolation must be warm or process, not '{isolation}'")
    return ScriptOptions(timeout=timeout, workers=workers, verbose=verbose, isolation=isolation)


@app.command()
def validate(
    strategy: Path = typer.Argument(..., help="Strategy YAML file."),
    set_: SetOption = None,
    workspace: WorkspaceOption = None,
    components: ComponentsOption = None,
    deep: bool = typer.Option(False, "--deep", help="Then run the look-ahead check on the strategy's data "
                                                    "(`candleflow check` with its defaults)."),
) -> None:
    """Check a strategy (schema, components, params, graph) without running it."""
    from candleflow.backtest import prepare  # lazy: see the module docstring

    compiled, _ = prepare(strategy, variables=parse_assignments(set_), workspace=workspace,
                          component_dirs=components or ())
    from candleflow.data import check_source  # lazy: see the module docstring

    check_source(compiled.strategy.data, workspace=compiled.workspace, file=compiled.file)
    graph = compiled.graph
    kinds = [graph.nodes[n]["kind"] for n in graph]
    conditions = f"{kinds.count('condition')} conditions, " if "condition" in kinds else ""
    typer.echo(f"{strategy}: ok ({kinds.count('indicator')} indicators, {kinds.count('signal')} signals, "
               f"{conditions}{graph.number_of_edges()} edges)")
    if deep:
        from candleflow.backtest import load_data  # lazy: see the module docstring
        from candleflow.check import check_lookahead  # lazy: see the module docstring

        for line in check_lookahead(compiled, load_data(compiled)).lines():
            typer.echo(line)


@app.command()
def check(
    strategy: Path = typer.Argument(..., help="Strategy YAML file."),
    data: Optional[Path] = typer.Option(None, "--data", help="Candle file (CSV/Parquet) instead of the strategy's."),
    set_: SetOption = None,
    workspace: WorkspaceOption = None,
    components: ComponentsOption = None,
    cuts: int = typer.Option(8, "--cuts", min=0, help="Random cut points (besides those next to signal events)."),
    event_cuts: int = typer.Option(8, "--event-cuts", min=0,
                                   help="Signal events to cut at (each at its candle and the one before)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random cut points."),
    script_workers: Optional[int] = typer.Option(None, "--script-workers",
                                                 help="Processes running script components (default: one per CPU)."),
    timeout: float = typer.Option(10.0, help="Seconds a script component may take per candle."),
    max_data_size: MaxDataSizeOption = None,
) -> None:
    """Look for look-ahead: rerun every node on the data cut at several candles; exit 2 if any value changes."""
    from candleflow.check import check_strategy  # lazy: see the module docstring

    report = check_strategy(strategy, data=data, variables=parse_assignments(set_), workspace=workspace,
                            component_dirs=components or (), max_bytes=_max_data_bytes(max_data_size), cuts=cuts,
                            event_cuts=event_cuts, seed=seed,
                            script_options=script_options_from(timeout=timeout, workers=script_workers,
                                                               verbose=False))
    for line in report.lines():
        typer.echo(line)


@app.command()
def run(
    strategy: Path = typer.Argument(..., help="Strategy YAML file."),
    data: Optional[Path] = typer.Option(None, "--data", help="Candle file (CSV/Parquet) instead of the strategy's."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write result files into this folder."),
    format_: Optional[str] = typer.Option(None, "--format", help="With --out: the per-candle series (equity, "
                                                                 "indicators, candles) as parquet (default) or csv."),
    set_: SetOption = None,
    workspace: WorkspaceOption = None,
    components: ComponentsOption = None,
    cache_dir: Path = typer.Option(Path(".candleflow/cache"), "--cache-dir", help="On-disk node cache."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute every node; read and write no cache."),
    scheduler: str = typer.Option("threads", help="Where the graph runs: threads, sync, processes or "
                                                  "tcp://HOST:PORT (a running Dask scheduler)."),
    workers: Optional[int] = typer.Option(None, help="Threads or processes of a local scheduler (default: one "
                                                     "per CPU)."),
    script_workers: Optional[int] = typer.Option(None, "--script-workers",
                                                 help="Processes running script components (default: one per CPU)."),
    timeout: float = typer.Option(10.0, help="Seconds a script component may take per candle."),
    isolation: str = typer.Option("warm", help="Script components: warm (a process per chunk of candles, "
                                               "state restored per candle) or process (a process per candle)."),
    graph_file: Optional[Path] = typer.Option(None, "--graph", help="Draw the annotated graph (.svg/.png/.dot)."),
    report_file: Optional[Path] = typer.Option(None, "--report", help="Write the HTML report here."),
    replay_signals: Optional[Path] = typer.Option(None, "--replay-signals",
                                                  help="Feed recorded signals (JSON/CSV) to the evaluator "
                                                       "instead of running components."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log every component call with its time."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar and no summary table."),
    max_data_size: MaxDataSizeOption = None,
) -> None:
    """Run a backtest and print its summary."""
    from candleflow.backtest import load_data, prepare, run_compiled  # lazy: see the module docstring
    from candleflow.dag.cache import NodeCache  # lazy: see the module docstring
    from candleflow.dag.get import check_scheduler  # lazy: see the module docstring
    from candleflow.output_paths import check_file, writing  # lazy: see the module docstring

    check_scheduler(scheduler)
    script_options = script_options_from(timeout=timeout, workers=script_workers, verbose=verbose,
                                         isolation=isolation)
    if workers is not None and (workers < 1 or scheduler not in ("threads", "processes")):
        raise ConfigError(f"--workers must be at least 1, got {workers}" if workers < 1 else
                          f"--workers sizes a threads or processes scheduler, not '{scheduler}'")
    if format_ is not None and out is None:
        raise ConfigError("--format sets the format of the result files; give --out DIR too")
    if out is not None:
        from candleflow.results import check_format, check_results_folder  # lazy: see the module docstring

        check_format(format_ or "parquet")
        check_results_folder(out)
    if graph_file is not None:
        from candleflow.visualize.graph import check_graph_output  # lazy: see the module docstring

        check_graph_output(graph_file, "--graph")
    if report_file is not None:
        check_file(report_file, "--report")
    if verbose:
        import logging  # lazy: see the module docstring

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    compiled, text = prepare(strategy, variables=parse_assignments(set_), workspace=workspace,
                             component_dirs=components or ())
    candles = load_data(compiled, data, max_bytes=_max_data_bytes(max_data_size))
    cache = None if no_cache else NodeCache(cache_dir)
    if replay_signals is not None:
        from candleflow.replay import replay_compiled  # lazy: see the module docstring

        result = replay_compiled(compiled, candles, replay_signals, source_text=text, scheduler=scheduler)
    else:
        from candleflow.progress import run_with_progress  # lazy: see the module docstring

        result = run_with_progress(run_compiled, compiled, candles, quiet=quiet, cache=cache,
                                   scheduler=scheduler, num_workers=workers, script_options=script_options,
                                   source_text=text)
    writers = _run_outputs(result, graph_file, report_file)
    if out is not None:  # a --graph or --report inside --out is part of the results' atomic set
        inside = {path: name for path in writers if (name := _inside(path, out)) is not None}
        with writing(out, "the results"):
            result.write(out, extras={name: writers.pop(path) for path, name in inside.items()},
                         format=format_ or "parquet")
    for path, write in writers.items():
        with writing(path, "the graph" if path == graph_file else "the report"):
            write(path)
    for line in result.silent_parts():  # a signal that never fired, a rule that never triggered
        warn(line)
    if not quiet:
        from candleflow.summary import print_summary  # lazy: see the module docstring

        print_summary(result, out=out)


def _run_outputs(result: Any, graph_file: Path | None, report_file: Path | None) -> dict[Path, Any]:
    """The writers of ``run``'s --graph and --report files, by path."""
    writers = {}
    if graph_file is not None:
        from candleflow.visualize import render_graph  # lazy: see the module docstring

        writers[graph_file] = lambda path: render_graph(result.compiled, path, stats=result.stats)
    if report_file is not None:
        from candleflow.visualize import write_report  # lazy: see the module docstring

        writers[report_file] = lambda path: write_report(result, path)
    return writers


def _inside(path: Path, folder: Path) -> str | None:
    """``path`` relative to ``folder`` (a/b.svg) when it lies inside it, else None."""
    rel = os.path.relpath(os.path.realpath(path), os.path.realpath(folder))
    return None if rel == "." or rel.startswith(os.pardir) else Path(rel).as_posix()


@app.command()
def render(
    strategy: Path = typer.Argument(..., help="Strategy YAML file."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file: .svg, .png or .dot."),
    set_: SetOption = None,
    workspace: WorkspaceOption = None,
    components: ComponentsOption = None,
) -> None:
    """Draw the compiled strategy graph with graphviz."""
    from candleflow.backtest import prepare  # lazy: see the module docstring
    from candleflow.visualize import render_graph  # lazy: see the module docstring
    from candleflow.visualize.graph import check_graph_output  # lazy: see the module docstring

    check_graph_output(output, "-o")
    compiled, _ = prepare(strategy, variables=parse_assignments(set_), workspace=workspace,
                          component_dirs=components or ())
    _write(output, "the graph", lambda: render_graph(compiled, output))


@app.command()
def report(
    results: Path = typer.Argument(..., help="Results folder written by `candleflow run --out`, or a sweep table "
                                             "(.csv or .parquet) written by `candleflow sweep --out`."),
    output: Path = typer.Option(..., "-o", "--output", help="HTML file to write."),
    rank_by: Optional[str] = typer.Option(None, "--rank-by", help="A sweep table's rank metric (default: sharpe)."),
) -> None:
    """Write a self-contained HTML report of a finished run or sweep."""
    from candleflow.output_paths import check_file  # lazy: see the module docstring
    from candleflow.visualize import write_report, write_sweep_report  # lazy: see the module docstring

    check_file(output, "-o")
    if results.suffix.lower() in (".csv", ".parquet"):
        _write(output, "the report", lambda: write_sweep_report(results, output, rank_by=rank_by))
        return
    if rank_by is not None:
        raise ConfigError("--rank-by ranks a sweep table; a run's results folder has one run")
    _write(output, "the report", lambda: write_report(results, output))


@app.command()
def sweep(
    strategy: Path = typer.Argument(..., help="Strategy YAML file, usually a jinja2 template."),
    grid: Path = typer.Option(..., "--grid", help="Sweep spec: parameter grids, symbols, ranking."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler",
                                            help="Where the sweep runs: threads, sync, processes or tcp://HOST:PORT "
                                                 "(default: an embedded local cluster of processes)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1,
                                          help="Threads or processes of a local scheduler, or processes of the "
                                               "embedded cluster (default: one per CPU)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write every combination's row (.csv or .parquet)."),
    report_path: Optional[Path] = typer.Option(None, "--report", help="Write the sweep's HTML report here."),
    top: int = typer.Option(10, "--top", min=0, help="Rows of the ranked table to print."),
    rank_by: Optional[str] = typer.Option(None, "--rank-by", help="Metric to rank by (default: the grid's rank.by)."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop at the first failing combination (exit 2)."),
    workspace: WorkspaceOption = None,
    max_combinations: int = typer.Option(1_000_000, "--max-combinations", min=1,
                                         help="Refuse a grid with more combinations than this."),
    max_data_size: MaxDataSizeOption = None,
) -> None:
    """Backtest every combination of a parameter grid (and symbols) on Dask; rank the results."""
    from candleflow.dag.get import check_scheduler  # lazy: see the module docstring
    from candleflow.output_paths import writing  # lazy: see the module docstring
    from candleflow.sweep import load_grid, run_sweep  # lazy: see the module docstring
    from candleflow.sweep.search import run_search  # lazy: see the module docstring
    from candleflow.sweep.display import print_top, progress_bar  # lazy: see the module docstring
    from candleflow.sweep.output import check_output  # lazy: see the module docstring
    from candleflow.sweep.run import NOT_COMPUTED, SchedulerLost  # lazy: see the module docstring
    from candleflow.output_paths import check_file  # lazy: see the module docstring

    if scheduler is not None:
        check_scheduler(scheduler)
        if workers is not None and scheduler not in ("threads", "processes"):
            raise ConfigError(f"--workers sizes a threads or processes scheduler or the embedded cluster, "
                              f"not '{scheduler}'")
    if out is not None:
        check_output(out)
    if report_path is not None:
        check_file(report_path, "--report")
    spec = load_grid(grid)
    if spec.walk_forward is not None:
        _walk_forward(strategy, grid, scheduler=scheduler, workers=workers, workspace=workspace, rank_by=rank_by,
                      fail_fast=fail_fast, out=out, report_path=report_path)
        return
    run = run_search if spec.search.method == "tpe" else run_sweep
    try:
        with progress_bar() as on_progress:
            result = run(strategy, grid, scheduler=scheduler, workers=workers, workspace=workspace,
                         rank_by=rank_by, fail_fast=fail_fast, on_progress=on_progress,
                         max_combinations=max_combinations, max_data_bytes=_max_data_bytes(max_data_size))
    except SchedulerLost as exc:  # keep what was computed: every row, the missing ones marked
        if out is None or exc.result is None:
            raise
        with writing(out, "the sweep table"):
            exc.result.write(out)
        raise CandleflowError(f"{exc}; {out} has every row, those not computed with error '{NOT_COMPUTED}'") from None
    _write_sweep_files(result, out=out, report_path=report_path, title=strategy.name, what="sweep")
    print_top(result, top=top, out=out, report=report_path)
    if result.failed == len(result.frame):
        raise CandleflowError(f"all {result.failed} combinations failed; first: {result.first_failure()}")


def _walk_forward(strategy: Path, grid: Path, *, out: Path | None, report_path: Path | None, **options) -> None:
    """``sweep`` on a grid with a ``walk_forward`` section: the analysis, its table, its files."""
    from candleflow.sweep.display import print_walk_forward  # lazy: see the module docstring
    from candleflow.sweep.walkforward import run_walk_forward  # lazy: see the module docstring

    result = run_walk_forward(strategy, grid, **options)
    _write_sweep_files(result, out=out, report_path=report_path, title=strategy.name, what="walk-forward")
    print_walk_forward(result, out=out, report=report_path)


def _write_sweep_files(result, *, out: Path | None, report_path: Path | None, title: str, what: str) -> None:
    """A sweep's or walk-forward's table (``--out``) and HTML report (``--report``), each written atomically."""
    from candleflow.output_paths import writing  # lazy: see the module docstring
    from candleflow.visualize import write_sweep_report  # lazy: see the module docstring

    if out is not None:
        with writing(out, f"the {what} table"):
            result.write(out)
    if report_path is not None:
        with writing(report_path, f"the {what} report"):
            write_sweep_report(result, report_path, title=title)


@app.command()
def sample(
    name: str = typer.Argument("eurusd_1h", help="Sample name."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write it (.csv or .parquet)."),
) -> None:
    """Write a bundled sample data set to a file."""
    from candleflow.data import SAMPLES, sample_candles, write_candles  # lazy: see the module docstring
    from candleflow.output_paths import check_file  # lazy: see the module docstring

    if name not in SAMPLES:
        raise ConfigError(f"unknown sample '{name}' (samples: {', '.join(SAMPLES)})")
    check_file(output, "-o")
    _write(output, "the sample", lambda: write_candles(sample_candles(name), output))


def _write(output: Path, what: str, write: Callable[[], Any]) -> None:
    """Run ``write`` (a full disk is one line naming ``output``), then say where ``what`` went."""
    from candleflow.output_paths import writing  # lazy: see the module docstring

    with writing(output, what):
        write()
    typer.echo(f"wrote {output}")


# typer >= 0.20 vendors its own click (typer._click): catch its exception classes as well as click's
try:
    from typer._click.exceptions import ClickException as _TyperClickException
except ImportError:  # older typer: plain click
    _TyperClickException = click.exceptions.ClickException
_USAGE_ERRORS = (click.exceptions.ClickException, _TyperClickException)
_EXIT = (click.exceptions.Exit, typer.Exit)
_ABORT = (click.exceptions.Abort, typer.Abort)

_INTERRUPTED = {
    signal.SIGINT: "candleflow: interrupted; no partial result files were written",
    signal.SIGTERM: "candleflow: terminated (SIGTERM); no partial result files were written",
}


@contextlib.contextmanager
def _interrupts_as_keyboard_interrupt(received: list[int]) -> Iterator[None]:
    """While the command runs, SIGINT and SIGTERM both raise KeyboardInterrupt (and are remembered).

    Without this SIGTERM would kill the process on the spot; as a KeyboardInterrupt
    it unwinds like Ctrl-C, so temp files are removed and the exit is clean.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    # a signal the parent set to be ignored (e.g. SIGINT for a background job) stays ignored
    previous = {sig: signal.signal(sig, handler) for sig in _INTERRUPTED if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """While the command runs, each CandleflowWarning prints as one ``warning: ...`` line (others as usual)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", CandleflowWarning)  # their sender already says each thing once
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, CandleflowWarning):
                print("warning: " + " ".join(str(message).split()), file=sys.stderr)  # one line, always
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _interrupted(received: list[int]) -> int:
    signum = received[-1] if received else signal.SIGINT
    print(_INTERRUPTED.get(signum, _INTERRUPTED[signal.SIGINT]), file=sys.stderr)
    return 128 + int(signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``candleflow`` script; returns the exit code.

    0 success, 2 user error (one line on stderr), 130 interrupted (Ctrl-C; 143 on
    SIGTERM), 1 with a traceback: a bug in candleflow.
    """
    received: list[int] = []
    _state["debug"] = bool(os.environ.get("CANDLEFLOW_DEBUG"))  # --debug of an earlier in-process call must not stick
    args = list(sys.argv[1:] if argv is None else argv)
    for number, arg in enumerate(args, 1):  # (only an in-process caller can: no OS passes one to a new process)
        if "\0" in arg:
            shown = arg.replace("\0", "\\0")
            print(f"error: command line: argument {number} '{shown}' contains a NUL byte", file=sys.stderr)
            return 2
    if "--debug" in args[1:]:  # accepted after the command too: `candleflow run x.yaml --debug`
        _state["debug"] = True
        args = [args[0]] + [a for a in args[1:] if a != "--debug"]
    try:
        with _interrupts_as_keyboard_interrupt(received), _warnings_as_lines():
            code = app(args=args, prog_name="candleflow", standalone_mode=False)
    except _EXIT as exc:
        return getattr(exc, "exit_code", 0)
    except _USAGE_ERRORS as exc:  # one line like every other user error, with where to look
        context = getattr(exc, "ctx", None)
        command = context.command_path if context is not None else "candleflow"
        print(f"error: {' '.join(exc.format_message().split())} (see '{command} --help')", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, *_ABORT):
        return _interrupted(received)
    except CandleflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if _state["debug"]:
            traceback.print_exc()
        return 2
    if code == 130 or received:  # typer turns a KeyboardInterrupt into exit code 130 itself
        return _interrupted(received)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
