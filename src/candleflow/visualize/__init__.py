"""Pictures of a strategy and its run: the graph drawing and the HTML report."""

from candleflow.visualize.graph import render_graph
from candleflow.visualize.report import write_report

__all__ = ["render_graph", "write_report"]
