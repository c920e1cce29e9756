"""The StreamVision contract: Avro schemas (``*.avsc``), their Python shapes and the Avro codec.

- :mod:`schemas.records`: ``TypedDict`` per record (timestamps are epoch-millisecond ints).
- :mod:`schemas.registry`: local and Confluent-compatible schema registries.
- :mod:`schemas.serde`: Confluent wire format ``encode``/``decode`` without Faust.
- :mod:`schemas.codec`: the Faust codecs (``codecs_for``), re-exporting the rest.

Importing this package loads nothing: modules are imported on demand.
"""
