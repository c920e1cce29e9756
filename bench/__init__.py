"""``streamvision bench``: model ceiling, pipeline and naive throughput, and latency (DESIGN.md).

``bench.run.run_bench`` is the entry point; ``scenarios`` builds and registers the models and the
images, ``ceiling`` times the model alone, ``traffic`` and ``worker`` drive a real worker process
through the broker, ``machine`` describes where the numbers came from.
"""
