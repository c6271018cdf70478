"""Errors raised by pearll buffers beyond the built-in ones."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A saved buffer cannot be loaded: truncated, altered, foreign or from a newer pearll.

    The message names the file at fault and what is wrong with it.
    """
