"""Drift and A/B statistics for the stream agents.

Pure Python/numpy/scipy: nothing here imports Faust, Kafka or MLflow. Agents feed EnrichedEvent dicts
to these objects and publish what they return:

- :mod:`monitoring.profile`: ``ReferenceProfile`` (what "normal" looks like for a model version) and
  ``ProfileBuilder``.
- :mod:`monitoring.drift`: the metric functions, ``DriftThresholds``, ``DriftWindow`` and its immutable
  ``DriftSnapshot``.
- :mod:`monitoring.windows`: ``TumblingWindows``, count-or-time windows per (model, version, source).
- :mod:`monitoring.alerts`: ``AlertTracker``, K-window hysteresis that turns snapshots into DriftAlerts.
- :mod:`monitoring.abtest`: ``VariantStats`` and ``compare`` (two-proportion z-test).
"""
