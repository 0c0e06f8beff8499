"""Inkwell: an async CQRS, vertical-slice content service."""

__version__ = "0.1.0"
