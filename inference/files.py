"""Image files on disk: which files count as images, and walking folders for them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

#: Suffixes (lower case) of the files a folder walk yields.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def image_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The image files among ``paths``: a folder is walked recursively, in name order, for files with an
    image suffix; any other path is yielded as it is (so a caller can report a missing file).

    Example:
        >>> list(image_files([Path("missing.jpg")]))
        [PosixPath('missing.jpg')]
    """
    for path in map(Path, paths):
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            yield from sorted(found)
        else:
            yield path
