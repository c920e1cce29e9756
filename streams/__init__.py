"""StreamVision's stream side: the Faust app and what it is built from, in subpackages that point one way.

- ``cli/``: every command; ``feeders/``: camera, send, demo; ``devstack/``: the embedded stack and the
  worker-process helper (tooling: nothing else imports them).
- ``app.py`` (the factory), ``topology.py`` (topics and tables), ``web/`` (views), ``runtime/`` (the
  worker's services), ``compat.py`` (private Faust/aiokafka uses): the wiring the agents (``agents/``)
  are declared on.
- ``io/``: Kafka, Redis, webhook and registry clients; ``pipeline/`` and ``tables/``: the Faust-free core.
- ``settings.py`` and ``metrics.py``: imported by everything, importing nothing of the project.

The import contract in ``pyproject.toml`` keeps these directions; the README's layout table has more.
"""
