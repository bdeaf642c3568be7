"""Pictures of a strategy, its run and its sweeps: the graph drawing and the HTML reports."""

from candleflow.visualize.graph import render_graph
from candleflow.visualize.report import write_report
from candleflow.visualize.sweep_report import write_sweep_report

__all__ = ["render_graph", "write_report", "write_sweep_report"]
