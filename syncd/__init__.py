"""syncd: one task ledger for the tools an IT team already uses."""

__version__ = "0.1.0"
