"""Strategies: pure functions ``(state, tick) -> (state, signal | None)``."""

from engine.core.strategies.ma_cross import MaCross, MaCrossState

__all__ = ["MaCross", "MaCrossState"]
