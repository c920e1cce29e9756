"""Model runtime: image decoding, the model families behind one interface, and the micro-batcher."""
