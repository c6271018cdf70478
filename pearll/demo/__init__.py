"""The demo: train a reference agent on pearll's buffers and show how it learns.

``python -m pearll.demo`` (or ``pearll-demo``) runs :func:`pearll.demo.cli.main`. The pieces
stand alone: :mod:`~pearll.demo.episodes` (the episode log and its CSV),
:mod:`~pearll.demo.progress` (tqdm progress fed by trainer callbacks),
:mod:`~pearll.demo.plotting` (the learning-curve PNG) and :mod:`~pearll.demo.runners` (one
runner per algorithm: builds the env and buffer, calls the trainer).
"""
