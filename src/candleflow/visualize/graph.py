"""Drawing the strategy graph: :mod:`candleflow.dag.draw` does it (results need it below this layer).

This module keeps the ``candleflow.visualize`` names for it.
"""

from candleflow.dag.draw import build_graph, check_graph_output, draw, render_graph

__all__ = ["build_graph", "check_graph_output", "draw", "render_graph"]
