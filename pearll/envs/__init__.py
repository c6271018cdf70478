"""Small environments for tests and demos."""

from pearll.envs.bit_flipping import BitFlippingEnv

__all__ = ["BitFlippingEnv"]
