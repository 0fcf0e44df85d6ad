"""Strategies: pure functions ``(state, tick) -> (state, signal | None)``."""

from engine.strategies.ma_cross import MaCross, MaCrossState

__all__ = ["MaCross", "MaCrossState"]
