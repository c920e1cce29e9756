"""Gather sample images into one folder at image build time, for the compose camera feeder.

The images come from installed packages: StreamVision's own ``streams/feeders/samples`` and the photos
ultralytics ships in its assets. They are located with ``importlib.util.find_spec``, which imports
neither package (importing ultralytics writes a settings file and may try the network)::

    python deploy/docker/collect_samples.py /opt/streamvision/samples
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

log = logging.getLogger("streamvision.collect_samples")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# (package, folder inside it) pairs that hold sample images.
SOURCES: tuple[tuple[str, str], ...] = (("streams", "feeders/samples"), ("ultralytics", "assets"))


def package_dir(package: str) -> Path | None:
    """The install folder of a top-level package, without importing it.

    Args:
        package: A top-level package name.

    Returns:
        The folder, or None when the package is not installed or is a single module.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sample_images(folders: Iterable[Path]) -> list[Path]:
    """The image files directly inside ``folders``, sorted by name within each folder.

    Args:
        folders: Folders to scan; missing ones are skipped.

    Returns:
        Paths of files whose suffix is in ``IMAGE_SUFFIXES``.
    """
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            images = (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            found.extend(sorted(images))
    return found


def collect(dest: Path, sources: Sequence[tuple[str, str]] = SOURCES) -> list[Path]:
    """Copy the sample images of ``sources`` into ``dest``.

    Args:
        dest: Target folder (created if missing).
        sources: ``(package, subfolder)`` pairs to take images from.

    Returns:
        The copied files, in ``dest``.

    Raises:
        FileNotFoundError: If no source holds any image (a camera with nothing to send is a build
            error, not a runtime surprise).
    """
    folders = [d / sub for pkg, sub in sources if (d := package_dir(pkg)) is not None]
    images = sample_images(folders)
    if not images:
        raise FileNotFoundError(f"no sample images in {[f'{p}/{s}' for p, s in sources]}")
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for image in images:
        target = dest / image.name
        shutil.copyfile(image, target)
        copied.append(target)
    log.info("copied %d sample images to %s", len(copied), dest)
    return copied


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``collect_samples.py DEST``.

    Args:
        argv: ``[DEST]``.

    Returns:
        0 on success, 2 on a usage error.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        log.error("usage: collect_samples.py DEST")
        return 2
    collect(Path(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
