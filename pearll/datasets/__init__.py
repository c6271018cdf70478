"""Offline datasets: Minari import and export, and offline-to-online mixed replay.

``pearll.datasets.minari`` needs ``pip install 'pearll[minari]'`` (Python >= 3.11) only when
its functions run; :class:`MixedReplay` needs nothing beyond pearll.
"""

from pearll.datasets.mixed import MixedReplay

__all__ = ["MixedReplay"]
