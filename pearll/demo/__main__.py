"""``python -m pearll.demo``: see :mod:`pearll.demo.cli`."""

from pearll.demo.cli import main

raise SystemExit(main())
