"""linegate gateway: the process that runs one line."""

__version__ = "0.1.0"
