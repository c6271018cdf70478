"""A sharded replay service on Ray: collectors add to shards, a learner samples across them.

Install with ``pip install 'pearll[ray]'``. Importing this package does not import Ray; creating
a service does. See ``docs/distributed.md`` and :mod:`pearll.distributed.service`.
"""

from pearll.distributed.rate_limit import RateLimit, RateLimitTimeout
from pearll.distributed.service import ReplayService, ShardLoss
from pearll.distributed.spaces import EnvSpaces

__all__ = ["EnvSpaces", "RateLimit", "RateLimitTimeout", "ReplayService", "ShardLoss"]
