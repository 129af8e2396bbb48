"""Parley: a self-hosted chat service."""

__version__ = "0.1.0"
