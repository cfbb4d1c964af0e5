"""Registers every architecture with the checkpoint loader. One import line per model module."""
from . import rrdb, discriminators  # noqa: E402,F401,I001
from . import redeg  # noqa: E402,F401,I001
