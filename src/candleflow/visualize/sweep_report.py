"""The HTML report of a sweep: where in parameter space the strategy works, at a glance, offline.

``write_sweep_report`` takes a :class:`~candleflow.sweep.run.SweepResult` or a
sweep table written by ``candleflow sweep --out`` (CSV or Parquet: its columns
are ``symbol``, the parameters, the catalog's metrics and ``error``) and renders
``templates/sweep.html.j2``:

* **Heatmaps** of the rank metric over each pair of parameters (the symbol counts
  as a parameter when there are several), like backtesting.py's ``plot_heatmaps``:
  each cell aggregates every combination with that pair of values, as the **best**
  (the rank's direction: max, or min for a metric ranked by min) or the **mean**
  over the other parameters; a toggle switches them.  Cells are table cells coloured
  on one scale per heatmap (``SCALE``), so the page needs no heatmap code at all.
* **Each parameter alone**: the best and the mean rank metric per value.
* **Return vs drawdown**: one point per combination, coloured by the rank metric,
  the top rows ringed; above ``MAX_POINTS`` combinations the top ones and an even
  sample of the rest (the caption says how many).
* **The top table**: the best ``TOP`` rows with the catalog's sweep columns.

Failed combinations (``error`` set) are counted, not drawn.  plotly.js's finance
bundle is embedded once, as in the run report.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup

from candleflow import __version__
from candleflow._atomic import write_text_atomic
from candleflow.errors import ConfigError
from candleflow.portfolio.catalog import CATALOG, METRICS, better, format_metric, label
from candleflow.visualize import charts
from candleflow.visualize.report import TEMPLATES, plotly_js

if TYPE_CHECKING:
    from candleflow.sweep.run import SweepResult
    from candleflow.sweep.walkforward import WalkForwardResult

TOP = 20
MAX_POINTS = 20_000
SCALE = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b",
         "#fde725"]  # viridis, worst to best
RESERVED = ("symbol", "error")


@dataclass
class SweepTable:
    """A sweep's rows (best first) and what its columns are."""

    frame: pd.DataFrame
    parameters: list[str]
    metrics: list[str]
    rank_by: str
    order: str  # "max" or "min"
    title: str


def write_sweep_report(source: "SweepResult | WalkForwardResult | str | Path", output: str | Path, *,
                       rank_by: str | None = None, title: str | None = None) -> Path:
    """Write the HTML report of a sweep (a result, or a table file) or of a walk-forward analysis to
    ``output``, atomically."""
    output = Path(output)
    if hasattr(source, "efficiency"):  # a WalkForwardResult (this layer may not import candleflow.sweep)
        write_text_atomic(output, render_walk_forward(source, title=title or "walk-forward"))
        return output
    table = sweep_table(source, rank_by=rank_by, title=title)
    write_text_atomic(output, render_sweep_report(table))
    return output


def sweep_table(source: "SweepResult | str | Path", *, rank_by: str | None = None,
                title: str | None = None) -> SweepTable:
    """The rows and columns of ``source``; a table file's parameters are its columns that are not metrics."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        frame = _read_table(path)
        metrics = [column for column in frame.columns if column in CATALOG]
        parameters = [column for column in frame.columns if column not in CATALOG and column not in RESERVED]
        by, order, name = rank_by or "sharpe", None, title or path.name
    else:
        frame, metrics, parameters = source.frame, list(source.metrics), list(source.parameters)
        by, order, name = rank_by or source.rank.by, source.rank.order, title or "sweep"
    if by not in frame.columns:
        raise ConfigError(f"cannot rank by '{by}': the sweep has no such metric (it has: {', '.join(metrics)})")
    order = order or better(by) or "max"
    if "symbol" in frame.columns and frame["symbol"].nunique(dropna=True) > 1:
        parameters = ["symbol", *parameters]
    ranked = frame.sort_values(by, ascending=order == "min", na_position="last", kind="stable")
    return SweepTable(ranked.reset_index(drop=True), parameters, metrics, by, order, name)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ConfigError("sweep table not found", file=str(path))
    try:
        return pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # pyarrow and the CSV parser raise many types; each is a bad file
        raise ConfigError(f"cannot read the sweep table: {' '.join(str(exc).split())}", file=str(path)) from None


def render_sweep_report(table: SweepTable) -> str:
    """The sweep report's HTML text."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    ok = table.frame[table.frame["error"].isna()] if "error" in table.frame.columns else table.frame
    figure, shown = scatter_figure(ok, table)
    return environment.get_template("sweep.html.j2").render(
        title=table.title, version=__version__, rank=label(table.rank_by), order=table.order,
        n_rows=len(table.frame), n_failed=len(table.frame) - len(ok), parameters=table.parameters,
        plotly_js=Markup(plotly_js()), heatmaps=[heatmap(ok, table, pair) for pair in
                                                  itertools.combinations(table.parameters, 2)],
        marginals=Markup(charts.to_html(marginal_figure(ok, table), plot_id="marginals")) if table.parameters
        else None,
        scatter=Markup(charts.to_html(figure, plot_id="scatter")) if figure is not None else None,
        scatter_shown=shown,
        top=top_rows(table))


def heatmap(rows: pd.DataFrame, table: SweepTable, pair: tuple[str, str]) -> dict[str, Any]:
    """The pair's grid: row values, column values, and per aggregation the cells (text, colour, tooltip)."""
    first, second = pair
    best = "max" if table.order == "max" else "min"
    grids = {how: rows.pivot_table(index=first, columns=second, values=table.rank_by, aggfunc=how, dropna=False)
             for how in (best, "mean")}
    index, columns = list(grids[best].index), list(grids[best].columns)
    cells = {}
    for how, grid in grids.items():
        values = grid.reindex(index=index, columns=columns).to_numpy(dtype=float)
        colours = _colours(values if table.order == "max" else -values)
        cells["best" if how == best else "mean"] = [
            [{"text": _cell_text(table.rank_by, value), "colour": colour, "ink": _ink(colour),
              "tip": f"{first}={row}, {second}={column}: {how} {label(table.rank_by)} "
                     f"{_cell_text(table.rank_by, value)}"}
             for column, value, colour in zip(columns, line, colour_line)]
            for row, line, colour_line in zip(index, values, colours)]
    return {"first": first, "second": second, "rows": [_value_text(v) for v in index],
            "columns": [_value_text(v) for v in columns], "cells": cells, "best": best}


def _colours(values: np.ndarray) -> list[list[str | None]]:
    """Each value's colour on ``SCALE`` from the grid's lowest (first) to highest (last); NaN: None."""
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    span = high - low
    steps = len(SCALE) - 1
    return [[None if not math.isfinite(v) else SCALE[round((v - low) / span * steps) if span else steps]
             for v in line] for line in values]


def _ink(colour: str | None) -> str:
    """Black or white text, whichever reads on ``colour`` (by its luminance)."""
    if colour is None:
        return "#64748b"
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#0f172a" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "#ffffff"


def _cell_text(metric: str, value: float) -> str:
    return "" if value is None or not math.isfinite(value) else format_metric(metric, value)


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def marginal_figure(rows: pd.DataFrame, table: SweepTable) -> go.Figure:
    """Per parameter, the best and the mean rank metric for each of its values (one panel each)."""
    from plotly.subplots import make_subplots  # plotly's subplot grid: only when a report is drawn

    n = len(table.parameters)
    columns = min(n, 3)
    figure = make_subplots(rows=math.ceil(n / columns), cols=columns, subplot_titles=table.parameters,
                           horizontal_spacing=0.08, vertical_spacing=0.18)
    best = "max" if table.order == "max" else "min"
    for i, parameter in enumerate(table.parameters):
        grouped = rows.groupby(parameter)[table.rank_by].agg([best, "mean"])
        x = [_value_text(v) for v in grouped.index]
        for how, colour, dash in ((best, "#2563eb", None), ("mean", "#94a3b8", "dot")):
            figure.add_trace(go.Scatter(x=x, y=grouped[how].to_numpy(dtype=float), mode="lines+markers",
                                        name="best" if how == best else "mean", legendgroup=how,
                                        showlegend=i == 0, line={"color": colour, "dash": dash}),
                             row=i // columns + 1, col=i % columns + 1)
    figure.update_xaxes(type="category")
    figure.update_yaxes(title_text=label(table.rank_by), col=1)
    _style(figure, height=260 * math.ceil(n / columns) + 60)
    figure.update_layout(legend={"y": 1.0, "yanchor": "bottom", "x": 1.0, "xanchor": "right"},
                         margin={"t": 64})
    return figure


def scatter_figure(rows: pd.DataFrame, table: SweepTable) -> tuple[go.Figure | None, int]:
    """Total return against max drawdown, one point per combination; and how many points are drawn."""
    if not {"total_return", "max_drawdown"} <= set(rows.columns) or rows.empty:
        return None, 0
    shown = _thin_rows(rows)
    hover = [", ".join(f"{p}={_value_text(r[p])}" for p in table.parameters) for r in shown.to_dict("records")]
    figure = go.Figure()
    figure.add_trace(go.Scatter(
        x=shown["max_drawdown"].to_numpy(dtype=float), y=shown["total_return"].to_numpy(dtype=float),
        mode="markers", name="combination", text=hover,
        marker={"color": shown[table.rank_by].to_numpy(dtype=float), "colorscale": "Viridis",
                "reversescale": table.order == "min", "size": 7, "opacity": 0.8,
                "colorbar": {"title": {"text": label(table.rank_by)}}},
        hovertemplate="%{text}<br>return %{y:+.2%}, max drawdown %{x:.2%}<extra></extra>"))
    top = rows.head(min(TOP, len(rows)))
    figure.add_trace(go.Scatter(
        x=top["max_drawdown"].to_numpy(dtype=float), y=top["total_return"].to_numpy(dtype=float), mode="markers",
        name=f"top {len(top)}", hoverinfo="skip",
        marker={"symbol": "circle-open", "size": 13, "color": "#dc2626", "line": {"width": 2}}))
    figure.update_xaxes(title_text="max drawdown", tickformat=".0%")
    figure.update_yaxes(title_text="total return", tickformat="+.0%")
    _style(figure, height=480)
    return figure, len(shown)


def _thin_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """All rows, or the first ``MAX_POINTS // 10`` (the best) and an even sample of the rest."""
    if len(rows) <= MAX_POINTS:
        return rows
    head = MAX_POINTS // 10
    rest = rows.iloc[head:]
    return pd.concat([rows.iloc[:head], rest.iloc[np.linspace(0, len(rest) - 1, MAX_POINTS - head).astype(int)]])


def top_rows(table: SweepTable) -> dict[str, Any]:
    """The best rows: the parameters, then the rank metric and the catalog's sweep columns."""
    metrics = [m for m in dict.fromkeys([table.rank_by, *(m.key for m in METRICS if m.sweep)])
               if m in table.frame.columns]
    rows = table.frame.head(TOP)
    errors = "error" in rows.columns and bool(rows["error"].notna().any())
    return {"parameters": table.parameters, "metrics": [label(m) for m in metrics], "errors": errors,
            "rows": [{"values": [_value_text(row[p]) for p in table.parameters],
                      "metrics": [format_metric(m, row[m]) for m in metrics],
                      "error": row.get("error") if isinstance(row.get("error"), str) else None}
                     for row in rows.to_dict("records")]}


def render_walk_forward(result: "WalkForwardResult", *, title: str) -> str:
    """The walk-forward report's HTML text: the stitched out-of-sample equity, in- against out-of-sample
    rank metric per window, the windows table and the stitched metrics."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    frame, rank = result.frame, result.rank_by
    rows = [{"window": row["window"], "train": f"{row['train_start']:%Y-%m-%d}",
             "test": f"{row['test_start']:%Y-%m-%d} → {row['test_end']:%Y-%m-%d}",
             "values": [_value_text(row.get(p)) for p in result.parameters],
             "metrics": [format_metric(m, row.get(f"{side}_{m}")) for side, m in window_columns(rank)],
             "error": row.get("error") or ""} for row in frame.to_dict("records")]
    return environment.get_template("walkforward.html.j2").render(
        title=title, version=__version__, rank=label(rank), n_windows=len(frame), parameters=result.parameters,
        efficiency=format_metric("sharpe", result.efficiency), plotly_js=Markup(plotly_js()),
        equity=Markup(charts.to_html(stitched_figure(result), plot_id="stitched")),
        compare=Markup(charts.to_html(compare_figure(result), plot_id="compare")),
        columns=[f"{label(m)} {'in' if side == 'is' else 'out'}" for side, m in window_columns(rank)], rows=rows,
        metrics=[{"label": label(m.key), "value": format_metric(m.key, result.metrics[m.key])}
                 for m in METRICS if m.core and m.key in result.metrics])


def window_columns(rank: str) -> list[tuple[str, str]]:
    """The windows table's metric columns, each in-sample then out-of-sample: the rank metric, return, trades."""
    return [(side, metric) for metric in dict.fromkeys([rank, "total_return", "n_trades"]) for side in ("is", "oos")]


def stitched_figure(result: "WalkForwardResult") -> go.Figure:
    """The stitched out-of-sample equity; a dotted line where each test window starts."""
    figure = go.Figure(go.Scatter(x=charts._ms(result.equity.index), y=result.equity.to_numpy(dtype=float),
                                  mode="lines", name="out-of-sample equity", line={"color": "#2563eb", "width": 1.6}))
    for start in result.frame["test_start"]:
        figure.add_vline(x=pd.Timestamp(start).value / 1e6, line={"color": "#94a3b8", "width": 1, "dash": "dot"})
    figure.update_xaxes(type="date")
    figure.update_yaxes(title_text="equity", tickformat=",.0f")
    _style(figure, height=380)
    return figure


def compare_figure(result: "WalkForwardResult") -> go.Figure:
    """Per window, the rank metric in-sample (what the choice promised) and out-of-sample (what it gave)."""
    frame, rank = result.frame, result.rank_by
    x = [f"#{w}" for w in frame["window"]]
    figure = go.Figure()
    for side, name, colour in (("is", "in-sample (best)", "#94a3b8"), ("oos", "out-of-sample", "#2563eb")):
        values = frame[f"{side}_{rank}"].to_numpy(dtype=float) if f"{side}_{rank}" in frame else np.full(len(x), np.nan)
        figure.add_trace(go.Bar(x=x, y=values, name=name, marker={"color": colour}))
    figure.update_layout(barmode="group")
    figure.update_yaxes(title_text=label(rank))
    _style(figure, height=340)
    return figure


def _style(figure: go.Figure, *, height: int) -> None:
    figure.update_layout(template=go.layout.Template(), height=height, paper_bgcolor="white", plot_bgcolor="white",
                         margin={"l": 70, "r": 24, "t": 48, "b": 48}, font={"family": charts.FONT, "size": 12},
                         legend={"orientation": "h", "y": 1.08, "x": 0})
    figure.update_xaxes(showgrid=True, gridcolor=charts.GRID, linecolor="#cbd5e1", zeroline=False)
    figure.update_yaxes(showgrid=True, gridcolor=charts.GRID, linecolor="#cbd5e1", zeroline=False)


__all__ = ["SweepTable", "render_sweep_report", "sweep_table", "write_sweep_report"]
