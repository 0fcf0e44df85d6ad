"""Golden outputs of the built-in strategies (see cases.py)."""
