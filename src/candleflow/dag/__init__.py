"""The strategy graph: compilation (networkx) and execution (Dask)."""

from candleflow.dag.compiler import (
    CANDLES, EVALUATOR, Binding, CompiledStrategy, NodePlan, compile_strategy, find_workspace,
)

__all__ = ["CANDLES", "EVALUATOR", "Binding", "CompiledStrategy", "NodePlan", "compile_strategy", "find_workspace"]
