"""A version's reference profile from a folder of images: run the model on them, profile the results.

The events given to ``monitoring.profile.ProfileBuilder`` have the shape of the EnrichedEvents the
pipeline produces for the same images (predictions, image_stats, the model's task, the embedding
when the family has one), so drift compares like with like.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inference.base import ImageModel, ImageRejected, ModelOutput
from inference.decode import DecodedImage, decode_image
from inference.files import image_files
from monitoring.profile import ProfileBuilder

log = logging.getLogger(__name__)


def reference_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, by suffix), sorted.

    Raises:
        NotADirectoryError: ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"reference folder not found: {folder}")
    return list(image_files([folder]))


def _decoded(paths: list[Path], max_bytes: int, max_pixels: int) -> Iterator[DecodedImage]:
    for path in paths:
        try:
            yield decode_image(path.read_bytes(), None, max_bytes=max_bytes, max_pixels=max_pixels)
        except ImageRejected as exc:
            log.warning("reference image %s skipped: %s", path, exc.message)


def reference_event(decoded: DecodedImage, output: ModelOutput, task: str) -> dict[str, Any]:
    """The EnrichedEvent fields a profile reads, for one reference image."""
    return {
        "model": {"task": task},
        "predictions": [{"label": p.label, "score": float(p.score)} for p in output.predictions],
        "image_stats": decoded.stats.as_record(),
        "embedding": None if output.embedding is None else output.embedding.tolist(),
    }


def profile_from_folder(
    model: ImageModel,
    folder: Path,
    *,
    batch_size: int = 16,
    max_bytes: int = 20 * 1024 * 1024,
    max_pixels: int = 50_000_000,
) -> dict[str, Any]:
    """The reference profile (JSON data) of ``model`` on the images in ``folder``.

    Args:
        model: the loaded version.
        folder: reference images (unreadable files are skipped with a warning).
        batch_size: images per forward pass.
        max_bytes: larger files are skipped (as the pipeline would dead-letter them).
        max_pixels: larger images are skipped.

    Returns:
        ``ReferenceProfile.to_dict()``.

    Raises:
        NotADirectoryError: ``folder`` is not a directory.
        ValueError: no image in ``folder`` could be decoded.
    """
    builder = ProfileBuilder(source="reference-folder")
    batch: list[DecodedImage] = []

    def flush() -> None:
        outputs = model.predict_batch([model.prepare(d.pixels) for d in batch])
        if len(outputs) != len(batch):
            raise RuntimeError(f"model returned {len(outputs)} outputs for {len(batch)} images")
        builder.update(reference_event(d, o, model.spec.task) for d, o in zip(batch, outputs, strict=True))
        batch.clear()

    for decoded in _decoded(reference_images(folder), max_bytes, max_pixels):
        batch.append(decoded)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    if builder.count == 0:
        raise ValueError(f"no decodable image in {folder}")
    return builder.build().to_dict()
