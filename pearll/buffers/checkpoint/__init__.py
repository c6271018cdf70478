"""Checkpoint I/O: crash-safe directories, streamed checksummed .npy files, spaces as JSON."""
