"""Stream processors. Each agent is a thin loop: pure code elsewhere, then a send or a table update.

Each module has ``register(app, topology, runtime)``, which declares its agents (and timers) on the app
that :func:`streams.app.build_app` builds; nothing is declared at import.
"""
