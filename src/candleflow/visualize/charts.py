"""The report's plotly charts: price with trades and indicators, equity with drawdown.

* **Price.** Up to ``CANDLESTICK_MAX`` bars are drawn as candlesticks, longer series
  as a close line.  Lines longer than ``MAX_POINTS`` are decimated by keeping the
  lowest and the highest point of each bucket of consecutive bars, so peaks and
  troughs survive and the file stays small.
* **Trades.** One marker per entry and one per exit, at the fill time and price:
  long entries ``triangle-up``, short entries ``triangle-down``, long exits ``x``,
  short exits ``square``.  Marker traces carry a ``uid`` starting with
  ``trade-``; plotly.js puts it into the trace's CSS class (``tracetrade-...``),
  which the report's script uses to count the markers really drawn.
* **Indicators.** An indicator output whose values lie on the price's scale
  (median within the close's range widened by half of it, and a spread at most
  ``SCALE_SPREAD`` times the close's) overlays the price; the others (RSI, MACD,
  ATR, ...) get one panel per indicator node below it.
* **Equity.** Equity curve above, drawdown from the running peak below.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

CANDLESTICK_MAX = 1500
MAX_POINTS = 5000
SCALE_SPREAD = 3.0
PRICE_HEIGHT = 520
PANEL_HEIGHT = 170
EQUITY_HEIGHT = 460

FONT = "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
INK, MUTED, GRID = "#0f172a", "#64748b", "#eef2f7"
UP, DOWN = "#16a34a", "#dc2626"
COLORWAY = ["#2563eb", "#f59e0b", "#8b5cf6", "#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569"]
MARKERS = {  # (side, event) -> uid, legend name, plotly symbol, colour
    ("long", "entry"): ("trade-long-entry", "Long entry", "triangle-up", UP),
    ("short", "entry"): ("trade-short-entry", "Short entry", "triangle-down", DOWN),
    ("long", "exit"): ("trade-long-exit", "Long exit", "x", "#166534"),
    ("short", "exit"): ("trade-short-exit", "Short exit", "square", "#991b1b"),
}
CONFIG = {"responsive": True, "displaylogo": False, "scrollZoom": False,
          "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}
COUNT_MARKERS_JS = "candleflowCountMarkers('{plot_id}');"  # defined in templates/report.html.j2


def to_html(figure: go.Figure, *, include_plotlyjs: bool, count_markers: bool = False) -> str:
    """A ``<div>`` drawing ``figure``; with ``include_plotlyjs`` it also embeds plotly.js (do it once)."""
    return figure.to_html(full_html=False, include_plotlyjs=include_plotlyjs, config=CONFIG,
                          default_width="100%", default_height=f"{figure.layout.height}px",
                          post_script=COUNT_MARKERS_JS if count_markers else None)


def price_caption(n_candles: int) -> str:
    """How the price chart shows ``n_candles`` candles."""
    if n_candles <= CANDLESTICK_MAX:
        return f"{n_candles:,} candles"
    thinned = " (lowest and highest of each bucket of bars)" if n_candles > MAX_POINTS else ""
    return f"{n_candles:,} closes{thinned}"


def price_figure(candles: pd.DataFrame, indicators: pd.DataFrame, trades: pd.DataFrame) -> go.Figure:
    """Price (candlesticks or close line), indicator overlays and panels, and trade markers."""
    overlays, panels = split_indicators(candles["close"], indicators)
    rows = 1 + len(panels)
    height = PRICE_HEIGHT + PANEL_HEIGHT * len(panels)
    figure = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.04 if panels else 0,
                           row_heights=[PRICE_HEIGHT / height] + [PANEL_HEIGHT / height] * len(panels))
    if len(candles) <= CANDLESTICK_MAX:
        figure.add_trace(go.Candlestick(
            x=_times(candles.index), open=candles["open"], high=candles["high"], low=candles["low"],
            close=candles["close"], name="Price", increasing={"line": {"color": UP, "width": 1}},
            decreasing={"line": {"color": DOWN, "width": 1}}), row=1, col=1)
    else:
        figure.add_trace(_line(candles["close"], "Close", color=INK, width=1.2), row=1, col=1)
    placed = [(column, 1) for column in overlays]
    for row, (node, columns) in enumerate(panels.items(), start=2):
        placed += [(column, row) for column in columns]
        figure.update_yaxes(title_text=node, row=row, col=1)
    for i, (column, row) in enumerate(placed):
        figure.add_trace(_line(indicators[column], column, color=COLORWAY[i % len(COLORWAY)]), row=row, col=1)
    for trace in trade_markers(trades):
        figure.add_trace(trace, row=1, col=1)
    figure.update_yaxes(title_text="price", row=1, col=1)
    figure.update_xaxes(rangeslider_visible=False)
    _style(figure, height=height, rows=rows)
    figure.update_layout(margin_t=76)  # room for a two-row legend under the mode bar
    return figure


def equity_figure(equity: pd.Series) -> go.Figure:
    """Equity curve and its drawdown from the running peak (as a percentage)."""
    drawdown = equity / equity.cummax() - 1.0
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.05, row_heights=[0.68, 0.32])
    figure.add_trace(_line(equity, "Equity", color="#2563eb", width=1.6), row=1, col=1)
    figure.add_trace(_line(drawdown, "Drawdown", color=DOWN, width=1, fill="tozeroy",
                           fillcolor="rgba(220, 38, 38, 0.15)"), row=2, col=1)
    figure.update_yaxes(title_text="equity", tickformat=",.0f", row=1, col=1)
    figure.update_yaxes(title_text="drawdown", tickformat=".0%", row=2, col=1)
    _style(figure, height=EQUITY_HEIGHT, rows=2)
    figure.update_layout(hovermode="x unified", showlegend=False)
    return figure


def trade_markers(trades: pd.DataFrame) -> list[go.Scatter]:
    """One marker trace per (side, entry/exit) that occurs; two markers per trade in all."""
    traces = []
    for (side, event), (uid, name, symbol, color) in MARKERS.items():
        mask = (trades["side"] == side).to_numpy()
        if not mask.any():
            continue
        rows, numbers = trades[mask], np.flatnonzero(mask) + 1
        custom = np.column_stack([numbers, rows["pnl"].to_numpy(dtype=float), rows["exit_reason"].astype(str)])
        detail = "P&L %{customdata[1]:,.2f}" + ("<br>exit: %{customdata[2]}" if event == "exit" else "")
        traces.append(go.Scatter(
            x=_times(pd.DatetimeIndex(rows[f"{event}_time"])), y=rows[f"{event}_price"], mode="markers",
            name=name, uid=uid, customdata=custom,
            marker={"symbol": symbol, "size": 9 if symbol == "x" else 10, "color": color,
                    "line": {"width": 1, "color": "white"}},
            hovertemplate=f"trade #%{{customdata[0]}} {name.lower()}<br>%{{x}}<br>price %{{y}}<br>{detail}"
                          "<extra></extra>"))
    return traces


def split_indicators(close: pd.Series, indicators: pd.DataFrame) -> tuple[list[str], dict[str, list[str]]]:
    """Indicator columns that overlay the price, and the others grouped by node (``macd.signal`` -> ``macd``)."""
    low, high = float(close.min()), float(close.max())
    span = (high - low) or abs(high) or 1.0
    overlays, panels = [], {}
    for column in indicators.columns:
        values = indicators[column].replace([np.inf, -np.inf], np.nan).dropna()
        if values.empty:
            continue
        median, spread = float(values.median()), float(values.max() - values.min())
        if low - span / 2 <= median <= high + span / 2 and spread <= SCALE_SPREAD * span:
            overlays.append(column)
        else:
            panels.setdefault(column.split(".")[0], []).append(column)
    return overlays, panels


def decimate(series: pd.Series, max_points: int = MAX_POINTS) -> pd.Series:
    """``series`` if short, else the lowest and highest point of each bucket of consecutive values."""
    n = len(series)
    if n <= max_points:
        return series
    size = math.ceil(n / (max_points // 2))
    values = series.to_numpy(dtype=float)
    padded = np.full(math.ceil(n / size) * size, np.nan)
    padded[:n] = values
    buckets = padded.reshape(-1, size)
    starts = np.arange(len(buckets)) * size
    lowest = starts + np.argmin(np.where(np.isnan(buckets), np.inf, buckets), axis=1)
    highest = starts + np.argmax(np.where(np.isnan(buckets), -np.inf, buckets), axis=1)
    keep = np.unique(np.concatenate([lowest, highest]))
    return series.iloc[keep[keep < n]]


def _line(series: pd.Series, name: str, *, color: str, width: float = 1.3, **extra) -> go.Scatter:
    series = decimate(series)
    return go.Scatter(x=_times(series.index), y=series.to_numpy(dtype=float), name=name, mode="lines",
                      line={"color": color, "width": width}, **extra)


def _times(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Naive UTC times (plotly.js has no time zones; the axis is labelled UTC)."""
    return index.tz_convert(None) if index.tz is not None else index


def _style(figure: go.Figure, *, height: int, rows: int) -> None:
    figure.update_layout(
        template=go.layout.Template(), height=height, margin={"l": 64, "r": 24, "t": 36, "b": 40},
        font={"family": FONT, "size": 12, "color": INK}, paper_bgcolor="white", plot_bgcolor="white",
        hoverlabel={"font": {"family": FONT}}, colorway=COLORWAY,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "xanchor": "left", "x": 0,
                "bgcolor": "rgba(255,255,255,0)"})
    figure.update_xaxes(showgrid=True, gridcolor=GRID, linecolor="#cbd5e1", zeroline=False, ticks="outside",
                        tickcolor="#cbd5e1", showspikes=True, spikecolor="#94a3b8", spikethickness=1,
                        spikemode="across", spikedash="dot")
    figure.update_xaxes(title_text="time (UTC)", row=rows, col=1)
    figure.update_yaxes(showgrid=True, gridcolor=GRID, linecolor="#cbd5e1", zeroline=False,
                        title_font={"color": MUTED, "size": 11})
