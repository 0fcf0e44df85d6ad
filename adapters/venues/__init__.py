"""Venues: where orders go. ``paper`` simulates one from the tick stream."""
