"""Feeding images into the stream: the camera feeder, ``streamvision send`` and the demo."""
