"""Compact learning agents built on pearll's buffers (need torch)."""
