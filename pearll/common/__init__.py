"""Types and enumerations shared across pearll."""
