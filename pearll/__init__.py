"""pearll: experience buffers for reinforcement learning."""

__version__ = "0.1.0"
