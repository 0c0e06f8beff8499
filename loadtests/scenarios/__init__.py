"""Locust scenarios for Inkwell: newcomers, readers and retrying clients."""
