"""What the statistics tables hold, as plain functions and objects (no Faust): per-source stats,
per-variant stats for the A/B comparison, and the write-behind cache that flushes live objects to a table.
"""
