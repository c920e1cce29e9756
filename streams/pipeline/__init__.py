"""The inference path without Faust: intake, routing, micro-batched models, results, acks.

Records carry an ``ack`` callback and the outputs are injected, so everything here runs (and is tested)
without a broker.
"""
