"""``streamvision``: every command of the command line (the only importer of ``bench``).

``main`` parses the command and hands over to the module that implements it: ``streams.cli.models``
(``streamvision models``), ``streams.feeders`` (``demo``, ``send``, ``camera``), ``streams.devstack``
(``broker``), ``streams.app`` (``worker``), ``streams.cli.keys`` (``keys``) and ``bench`` (``bench``).
"""

from streams.cli.main import build_parser, main, settings_from

__all__ = ["build_parser", "main", "settings_from"]
