"""The trading core and the composition root. ``python -m engine --help`` lists the commands."""

__version__ = "0.1.0"
