"""Registers every architecture with the checkpoint loader. One import line per model module."""
