"""Drop-in replay buffers for Stable-Baselines3 (``pip install 'pearll[sb3]'``).

Each class subclasses SB3's own and takes SB3's constructor arguments, so it can be passed as
``replay_buffer_class`` to DQN, SAC, TD3, ... (see docs/sb3.md)::

    from stable_baselines3 import DQN
    from pearll.sb3 import ReplayBuffer

    model = DQN("MlpPolicy", "CartPole-v1", replay_buffer_class=ReplayBuffer)
"""

from pearll.sb3.checkpoint import load_replay_buffer
from pearll.sb3.dqn import PrioritizedDQN
from pearll.sb3.her import HerReplayBuffer
from pearll.sb3.prioritized import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
from pearll.sb3.replay import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer

__all__ = [
    "DictReplayBuffer",
    "HerReplayBuffer",
    "NStepReplayBuffer",
    "PrioritizedDQN",
    "PrioritizedReplayBuffer",
    "PrioritizedReplayBufferSamples",
    "ReplayBuffer",
    "load_replay_buffer",
]
