"""The report's chart: one plotly figure whose panels share one time axis, so they zoom together.

Rows, top to bottom, each only when it has something to show:

1. **Price**: candlesticks, the indicator outputs on the price's scale (median within the
   close's range widened by half of it, spread at most ``SCALE_SPREAD`` times the close's),
   and the trades.
2. **Volume**: bars coloured by the candle's direction (data without volume has none).
3. **Oscillators**: one panel per other indicator node (RSI, MACD, ATR...); outputs named
   ``hist`` or ``histogram`` are bars coloured by sign; the levels the strategy compares
   the node with (:mod:`candleflow.visualize.annotate`) are dotted lines.
4. **Equity**, with buy and hold of the same initial cash; 5. **drawdown** from the running peak.

**Thinning.** Up to ``MAX_BARS`` candles are drawn one by one; above, consecutive candles
are merged into bars of ``k`` (open of the first, highest high, lowest low, close of the
last, volume summed), so no high or low is lost.  Lines above ``MAX_BARS`` points keep the
lowest and the highest point of each group.  Times are sent as milliseconds since the epoch
on date axes: plotly encodes numeric arrays as base64 typed arrays (8 bytes a value, against
about 24 for a date string).

**Trades.** Entries are triangles by side; exits are hollow symbols, one trace per exit
reason (``EXITS``), green for a winning trade and red for a losing one; a dotted line joins
each entry to its exit in the same colour.  Exits are drawn before entries, so at a
reversal the new trade's entry stays visible on the old trade's exit.  Hovering a marker
shows the trade's number, side, P&L, return, duration and exit reason.  Marker traces carry
a ``uid`` starting with ``trade-`` (``trade-entry-long``, ``trade-exit-stop_loss``): plotly.js
puts it into the trace's CSS class, which the report's script counts by.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from candleflow.visualize.annotate import ChartNotes

MAX_BARS = 10_000
SCALE_SPREAD = 3.0
HEIGHTS = {"price": 460, "volume": 80, "panel": 150, "equity": 210, "drawdown": 110}
GAP = 26  # px between panels
MARGIN = {"l": 70, "r": 24, "t": 96, "b": 40}
BAR_OUTPUTS = ("hist", "histogram")
GAP_FACTOR, MAX_GAP_LENGTHS = 1.5, 24

FONT = "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
INK, MUTED, GRID = "#0f172a", "#64748b", "#eef2f7"
CANDLE_UP, CANDLE_DOWN = "#26a69a", "#ef5350"
WIN, LOSS = "#15803d", "#b91c1c"
SIDES = {"long": ("triangle-up", "#2563eb"), "short": ("triangle-down", "#c026d3")}
COLORWAY = ["#f59e0b", "#8b5cf6", "#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569", "#2563eb"]
EXITS = {  # exit reason (kernel.REASONS) -> legend text, hollow plotly symbol
    "signal": ("signal", "circle-open"),
    "reversal": ("reversal", "diamond-open"),
    "stop_loss": ("stop loss", "x-thin-open"),
    "take_profit": ("take profit", "star-open"),
    "trailing_stop": ("trailing stop", "star-triangle-down-open"),
    "break_even": ("break-even stop", "hourglass-open"),
    "max_bars": ("time limit", "hexagon-open"),
    "partial": ("partial exit", "circle-open-dot"),
    "end": ("closed at end", "square-open"),
    "open": ("open at end", "square-open-dot"),
}
CONFIG = {"responsive": True, "displaylogo": False, "scrollZoom": False,
          "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}
PLOT_ID = "candleflow-chart"
PLOT_JS = """(function () {{
  var arrays = {arrays};
  var figure = {figure};
  {shared}.forEach(function (use) {{ figure.data[use[0]][use[1]] = arrays[use[2]]; }});
  Plotly.newPlot("{plot_id}", figure.data, figure.layout, {config}).then(function () {{
    candleflowAfterPlot("{plot_id}");  // defined by the page's template
  }});
}})();"""


def to_html(figure: go.Figure, *, plot_id: str = PLOT_ID) -> str:
    """A ``<div>`` and the script drawing ``figure`` with the page's plotly.js (embedded once by the template),
    then calling the page's ``candleflowAfterPlot(plot_id)``.

    An array several traces hold (the candles' times: every full-length series has them) is
    written once and handed to each of them, which keeps a year of hourly candles small.
    """
    spec = figure.to_plotly_json()
    arrays, shared = _hoist_shared_arrays(spec["data"])
    script = PLOT_JS.format(arrays=_json(arrays), figure=_json(spec), shared=shared, plot_id=plot_id,
                            config=_json(CONFIG))
    return (f'<div id="{plot_id}" class="plotly-graph-div" style="height:{figure.layout.height}px; '
            f'width:100%;"></div>\n<script>\n{script}\n</script>')


def _json(value) -> str:
    """``value`` as JSON for the page's script.  Plotly's encoder escapes ``<``, ``>`` and ``/``; the first
    two keep a string from closing the script, so ``/`` (6 bytes as ``\\u002f``, one in 64 characters of a
    base64 array) is written as itself."""
    from plotly.io.json import to_json_plotly  # plotly's encoder: numpy arrays as base64 typed arrays

    return to_json_plotly(value).replace("\\u002f", "/")


def _hoist_shared_arrays(traces: list[dict]) -> tuple[list[dict], list[list]]:
    """Take each typed array held by more than one trace out of them: (the arrays, [trace, key, array])."""
    holders: dict[str, list[tuple[int, str]]] = {}
    for i, trace in enumerate(traces):
        for key in ("x", "y"):
            value = trace.get(key)
            if isinstance(value, dict) and "bdata" in value:
                holders.setdefault(value["dtype"] + ":" + value["bdata"], []).append((i, key))
    arrays, shared = [], []
    for uses in (uses for uses in holders.values() if len(uses) > 1):
        first, key = uses[0]
        arrays.append(traces[first][key])
        for i, key in uses:
            traces[i][key] = None
            shared.append([i, key, len(arrays) - 1])
    return arrays, shared


def report_figure(candles: pd.DataFrame, indicators: pd.DataFrame, equity: pd.Series, trades: pd.DataFrame, *,
                  notes: ChartNotes | None = None) -> go.Figure:
    """Price, volume, oscillators, equity and drawdown on one time axis (see the module docstring)."""
    notes = notes or ChartNotes()
    overlays, panels = split_indicators(candles["close"], indicators)
    volume = "volume" in candles.columns and bool((candles["volume"] > 0).any())
    rows = ["price"] + ["volume"] * volume + [f"panel:{node}" for node in panels] + ["equity", "drawdown"]
    heights = [HEIGHTS[row.partition(":")[0]] for row in rows]
    figure = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=GAP / sum(heights),
                           row_heights=[h / sum(heights) for h in heights])
    decimals = decimals_of(candles["close"].to_numpy())
    bars, _ = thin_ohlc(candles)
    _price_row(figure, bars, indicators[overlays], trades, decimals=decimals, notes=notes)
    if volume:
        figure.add_trace(_volume_bars(bars), row=2, col=1)
    for row, node in enumerate(panels, start=2 + volume):
        _panel_row(figure, row, indicators[panels[node]], notes=notes, node=node)
    _equity_rows(figure, len(rows) - 1, equity, candles["close"], notes=notes)
    _style(figure, rows=rows, height=sum(heights) + GAP * (len(rows) - 1) + MARGIN["t"] + MARGIN["b"],
           decimals=decimals)
    figure.update_xaxes(rangebreaks=time_gaps(candles.index))
    return figure


def caption(n_candles: int) -> str:
    """How the chart shows ``n_candles`` candles, in words."""
    k = bar_size(n_candles)
    if k == 1:
        return f"{n_candles:,} candles"
    return (f"{n_candles:,} candles, drawn as {math.ceil(n_candles / k):,} bars of {k} (open of the first, "
            f"highest high, lowest low, close of the last); lines keep each group's lowest and highest point")


def time_gaps(index: pd.DatetimeIndex, most: int = MAX_GAP_LENGTHS) -> list[dict]:
    """Plotly rangebreaks hiding the hours without candles (weekends, holidays), so candles sit side by side.

    A gap is a step between candles more than ``GAP_FACTOR`` times the usual (median) step; each
    is hidden from one usual step after its first candle to its next candle.  Gaps are grouped
    by length (one rangebreak per length: ``values`` the starts, ``dvalue`` the length).  Data
    with more than ``most`` distinct gap lengths is irregular, not gapped: nothing is hidden.
    """
    if len(index) < 3:
        return []
    times = _ms(index)
    steps = np.diff(times)
    usual = float(np.median(steps))
    big = np.flatnonzero(steps > GAP_FACTOR * usual)
    by_length: dict[float, list[str]] = {}
    for i in big:
        start = pd.Timestamp(times[i] + usual, unit="ms")
        by_length.setdefault(float(steps[i] - usual), []).append(start.strftime("%Y-%m-%d %H:%M:%S"))
    if len(by_length) > most:
        return []
    return [{"values": starts, "dvalue": length} for length, starts in by_length.items()]


def bar_size(n_candles: int, max_bars: int = MAX_BARS) -> int:
    """How many consecutive candles one drawn bar stands for."""
    return max(1, math.ceil(n_candles / max_bars))


def thin_ohlc(candles: pd.DataFrame, max_bars: int = MAX_BARS) -> tuple[pd.DataFrame, int]:
    """``candles`` merged into bars of ``k`` consecutive candles when there are more than ``max_bars``; and ``k``."""
    k = bar_size(len(candles), max_bars)
    if k == 1:
        return candles, 1
    starts = np.arange(0, len(candles), k)
    ends = np.minimum(starts + k, len(candles)) - 1
    columns = {"open": candles["open"].to_numpy()[starts],
               "high": np.maximum.reduceat(candles["high"].to_numpy(), starts),
               "low": np.minimum.reduceat(candles["low"].to_numpy(), starts),
               "close": candles["close"].to_numpy()[ends]}
    if "volume" in candles.columns:
        columns["volume"] = np.add.reduceat(candles["volume"].to_numpy(dtype=float), starts)
    return pd.DataFrame(columns, index=candles.index[starts]), k


def decimate(series: pd.Series, max_points: int = MAX_BARS) -> pd.Series:
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


def decimals_of(values: np.ndarray, most: int = 8) -> int:
    """The fewest decimals (up to ``most``) that write every value exactly: 5 for EURUSD, 2 for GOOG."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    for d in range(most + 1):
        if np.all(np.abs(np.round(values, d) - values) <= 1e-9 * np.maximum(1.0, np.abs(values))):
            return d
    return most


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


def trade_traces(trades: pd.DataFrame, *, decimals: int = 5) -> list[go.Scatter]:
    """Entry-to-exit lines (winners, losers), exit markers by reason, then entry markers by side."""
    if trades.empty:
        return []
    pnl = trades["pnl"].to_numpy(dtype=float)
    text = trade_hover(trades, decimals=decimals)
    traces = [_paths(trades, pnl > 0, "Winning trade", WIN), _paths(trades, pnl <= 0, "Losing trade", LOSS)]
    reasons = trades["exit_reason"].astype(str).to_numpy()
    for reason in dict.fromkeys(reasons):
        name, symbol = EXITS.get(reason, (reason, "circle-open"))
        mask = reasons == reason
        traces.append(_markers(trades[mask], "exit", text[mask], uid=f"trade-exit-{reason}", name=f"Exit: {name}",
                               symbol=symbol, color=np.where(pnl[mask] > 0, WIN, LOSS).tolist(), size=10))
    for side, (symbol, color) in SIDES.items():
        mask = (trades["side"] == side).to_numpy()
        if mask.any():
            traces.append(_markers(trades[mask], "entry", text[mask], uid=f"trade-entry-{side}",
                                   name=f"{side.capitalize()} entry", symbol=symbol, color=color, size=11))
    return [trace for trace in traces if trace is not None]


def trade_hover(trades: pd.DataFrame, *, decimals: int) -> np.ndarray:
    """Per trade: ``#3 long · P&L +125.40 (+1.25%)``, its entry and exit, how long it was held."""
    rows = []
    for number, t in enumerate(trades.itertuples(index=False), start=1):
        reason = EXITS.get(t.exit_reason, (t.exit_reason,))[0]
        rows.append(f"<b>#{number} {t.side}</b> · P&L {t.pnl:+,.2f} ({t.return_pct:+.2%})<br>"
                    f"entry {_when(t.entry_time)} @ {t.entry_price:,.{decimals}f}<br>"
                    f"exit {_when(t.exit_time)} @ {t.exit_price:,.{decimals}f} · {reason}<br>"
                    f"held {duration_text(pd.Timestamp(t.exit_time) - pd.Timestamp(t.entry_time))}")
    return np.asarray(rows, dtype=object)


def duration_text(delta: pd.Timedelta) -> str:
    """``3d 4h``, ``5h 30m``, ``45m``: the two largest units, for a trade's holding time."""
    minutes = int(delta.total_seconds() // 60)
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    parts = [(days, "d"), (hours, "h"), (mins, "m")]
    first = next((i for i, (value, _) in enumerate(parts) if value), 2)
    return " ".join(f"{value}{unit}" for value, unit in parts[first:first + 2] if value) or "0m"


def _price_row(figure, bars, overlays, trades, *, decimals: int, notes: ChartNotes) -> None:
    figure.add_trace(go.Candlestick(
        x=_ms(bars.index), open=bars["open"], high=bars["high"], low=bars["low"], close=bars["close"],
        name="Price", showlegend=False,
        increasing={"line": {"color": CANDLE_UP, "width": 1}, "fillcolor": CANDLE_UP},
        decreasing={"line": {"color": CANDLE_DOWN, "width": 1}, "fillcolor": CANDLE_DOWN}), row=1, col=1)
    for i, column in enumerate(overlays.columns):
        figure.add_trace(_line(overlays[column], legend_name(column, notes), color=COLORWAY[i % len(COLORWAY)]),
                         row=1, col=1)
    for trace in trade_traces(trades, decimals=decimals):
        figure.add_trace(trace, row=1, col=1)


def _volume_bars(bars: pd.DataFrame) -> go.Bar:
    up = (bars["close"] >= bars["open"]).to_numpy(dtype=np.int8)
    return go.Bar(x=_ms(bars.index), y=bars["volume"].to_numpy(dtype=float), name="Volume", showlegend=False,
                  marker={"color": up, "colorscale": [[0, CANDLE_DOWN], [1, CANDLE_UP]], "cmin": 0, "cmax": 1,
                          "line": {"width": 0}}, opacity=0.55)


def _panel_row(figure, row: int, columns: pd.DataFrame, *, notes: ChartNotes, node: str) -> None:
    """A node's outputs on ``row``: one output is named by the node's label; several by their output names
    under the label as the panel legend's title (``macd · macd(12, 26, 9): macd, signal, hist``)."""
    legend = f"legend{row}"
    several = len(columns.columns) > 1 or "." in columns.columns[0]
    if several:
        figure.update_layout({legend: {"title": {"text": notes.labels.get(node, node) + ":", "side": "left"}}})
    for i, column in enumerate(columns.columns):
        name = column.partition(".")[2] or column if several else legend_name(column, notes)
        if column.rpartition(".")[2] in BAR_OUTPUTS:
            series = decimate(columns[column])
            positive = (series.to_numpy() >= 0).astype(np.int8)
            trace = go.Bar(x=_ms(series.index), y=series.to_numpy(dtype=float), name=name, legend=legend,
                           marker={"color": positive, "colorscale": [[0, LOSS], [1, WIN]], "cmin": 0, "cmax": 1,
                                   "line": {"width": 0}}, opacity=0.6)
        else:
            trace = _line(columns[column], name, color=COLORWAY[(i + 1) % len(COLORWAY)], legend=legend)
        figure.add_trace(trace, row=row, col=1)
    for level in notes.levels.get(node, ()):
        figure.add_hline(y=level, row=row, col=1, line={"color": MUTED, "width": 1, "dash": "dot"},
                         annotation_text=f"{level:g}", annotation_position="right",
                         annotation_font={"size": 10, "color": MUTED})


def _equity_rows(figure, row: int, equity: pd.Series, close: pd.Series, *, notes: ChartNotes) -> None:
    """Equity and buy and hold (``initial cash x close / first close``) on ``row``, drawdown below it."""
    cash = notes.initial_cash if notes.initial_cash is not None else float(equity.iloc[0])
    hold = cash * close / float(close.iloc[0])
    legend = f"legend{row}"
    figure.add_trace(_line(hold, "Buy and hold", color="#94a3b8", width=1.2, dash="dash", legend=legend),
                     row=row, col=1)
    figure.add_trace(_line(equity, "Equity", color="#2563eb", width=1.6, legend=legend), row=row, col=1)
    drawdown = equity / equity.cummax() - 1.0
    figure.add_trace(_line(drawdown, "Drawdown", color=LOSS, width=1, fill="tozeroy",
                           fillcolor="rgba(185, 28, 28, 0.15)", showlegend=False), row=row + 1, col=1)


def legend_name(column: str, notes: ChartNotes) -> str:
    """``sma_fast · sma(20)`` for a node's only output; ``bb upper`` for one of several, ``macd`` for ``macd.macd``."""
    node, _, output = column.partition(".")
    if not output:
        return notes.labels.get(node, node)
    return node if output == node else f"{node} {output}"


def _paths(trades: pd.DataFrame, mask: np.ndarray, name: str, color: str) -> go.Scatter | None:
    """One line per trade from (entry time, entry price) to (exit time, exit price); NaN separates them."""
    if not mask.any():
        return None
    chosen = trades[mask]
    x = np.column_stack([_ms(pd.DatetimeIndex(chosen["entry_time"])), _ms(pd.DatetimeIndex(chosen["exit_time"])),
                         np.full(len(chosen), np.nan)]).ravel()
    y = np.column_stack([chosen["entry_price"].to_numpy(dtype=float), chosen["exit_price"].to_numpy(dtype=float),
                         np.full(len(chosen), np.nan)]).ravel()
    return go.Scatter(x=x, y=y, mode="lines", name=name, uid=f"path-{'win' if color == WIN else 'loss'}",
                      line={"color": color, "width": 1.5, "dash": "dot"}, hoverinfo="skip", connectgaps=False)


def _markers(rows: pd.DataFrame, event: str, text: np.ndarray, *, uid: str, name: str, symbol: str, color,
             size: int) -> go.Scatter:
    open_symbol = symbol.endswith(("-open", "-open-dot"))
    return go.Scatter(
        x=_ms(pd.DatetimeIndex(rows[f"{event}_time"])), y=rows[f"{event}_price"].to_numpy(dtype=float),
        mode="markers", name=name, uid=uid, text=text.tolist(), hovertemplate="%{text}<extra></extra>",
        marker={"symbol": symbol, "size": size, "color": color,
                "line": {"width": 2 if open_symbol else 1, "color": color if open_symbol else "white"}})


def _line(series: pd.Series, name: str, *, color: str, width: float = 1.3, dash: str | None = None,
          **extra) -> go.Scatter:
    series = decimate(series)
    return go.Scatter(x=_ms(series.index), y=series.to_numpy(dtype=float), name=name, mode="lines",
                      line={"color": color, "width": width, "dash": dash}, **extra)


def _ms(index: pd.DatetimeIndex) -> np.ndarray:
    """Milliseconds since the epoch (UTC) as float64: a date axis reads numbers as that."""
    return pd.DatetimeIndex(index).as_unit("ns").asi8 / 1e6


def _when(value) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _style(figure: go.Figure, *, rows: list[str], height: int, decimals: int) -> None:
    figure.update_layout(
        template=go.layout.Template(), height=height, margin=MARGIN, bargap=0,
        font={"family": FONT, "size": 12, "color": INK}, paper_bgcolor="white", plot_bgcolor="white",
        hovermode="closest", hoverlabel={"font": {"family": FONT}, "align": "left"}, colorway=COLORWAY,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "yref": "paper", "xanchor": "left", "x": 0,
                "bgcolor": "rgba(255,255,255,0)"})
    figure.update_xaxes(type="date", showgrid=True, gridcolor=GRID, linecolor="#cbd5e1", zeroline=False,
                        ticks="outside", tickcolor="#cbd5e1", showspikes=True, spikecolor="#94a3b8",
                        spikethickness=1, spikemode="across", spikedash="dot", spikesnap="cursor",
                        hoverformat="%Y-%m-%d %H:%M", rangeslider_visible=False)
    figure.update_yaxes(showgrid=True, gridcolor=GRID, linecolor="#cbd5e1", zeroline=False,
                        title_font={"color": MUTED, "size": 11})
    figure.update_xaxes(showticklabels=True, row=1, col=1)
    figure.update_xaxes(title_text="time (UTC)", row=len(rows), col=1)
    titles = {"price": "price", "volume": "volume", "equity": "equity", "drawdown": "drawdown"}
    for row, name in enumerate(rows, start=1):
        axis = figure.get_subplot(row, 1).yaxis
        axis.title.text = titles.get(name, name.partition(":")[2])
        if row > 1 and name not in ("volume", "drawdown"):  # a legend inside the panel, top left
            figure.update_layout({f"legend{row}": {
                "orientation": "h", "x": 0.005, "xanchor": "left", "y": axis.domain[1], "yanchor": "top",
                "yref": "paper", "bgcolor": "rgba(255,255,255,0.75)", "font": {"size": 11}}})
    figure.update_yaxes(hoverformat=f",.{decimals}f", row=1, col=1)
    figure.update_yaxes(tickformat=",.0f", hoverformat=",.2f", row=len(rows) - 1, col=1)
    figure.update_yaxes(tickformat=".0%", hoverformat=".2%", row=len(rows), col=1)
