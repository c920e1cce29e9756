"""YOLO detection with ultralytics' network, driven by our own pre- and post-processing.

We never call ``YOLO.predict`` (it calls ``torch.set_num_threads(1)`` for the whole process):
``prepare`` letterboxes, ``predict_batch`` runs the torch module's forward and ultralytics'
``non_max_suppression``, and boxes are mapped back to original-image pixels.

Weights (``spec.weights``): an ultralytics ``.pt`` checkpoint inside the artifact directory, or a
model yaml (a file there, or a bare name from ultralytics' ``cfg/models``) for random weights.
``spec.extra``: ``conf`` (0.25), ``iou`` (0.45), ``yolo_config_dir`` (ultralytics' config
directory; default a temp dir), ``torchscript`` (default true: on CPU the network is served as a
frozen TorchScript trace, see ``inference.jit``). ``spec.top_k`` is the most boxes per image.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from inference.base import Family, ImageModel, ModelOutput, ModelSpec, Prediction, Prepared
from inference.device import autocast, enforce_threads
from inference.families._common import channel_tensor, letterbox, normalised_batch
from inference.jit import traced_forward

_OFFLINE_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "false"}


def import_ultralytics(config_dir: Path | None = None) -> None:
    """Import ultralytics offline, leaving torch's thread count and ``OMP_NUM_THREADS`` as they were.

    Sets ``YOLO_OFFLINE``, ``YOLO_AUTOINSTALL=false`` and ``YOLO_CONFIG_DIR`` (``config_dir``, else an
    already set ``YOLO_CONFIG_DIR``, else a temp dir) and copies matplotlib's DejaVuSans as
    ``Arial.ttf`` there, so ultralytics never reaches for GitHub. These only take effect on the first
    import of ultralytics in the process.

    Args:
        config_dir: ultralytics' settings/font directory.
    """
    threads = torch.get_num_threads()
    omp = os.environ.get("OMP_NUM_THREADS")
    try:
        if "ultralytics" not in sys.modules:
            fallback = Path(tempfile.gettempdir()) / "streamvision-ultralytics"
            directory = Path(config_dir or os.environ.get("YOLO_CONFIG_DIR") or fallback)
            _install_font(directory)
            for key, value in _OFFLINE_ENV.items():
                os.environ.setdefault(key, value)
            os.environ["YOLO_CONFIG_DIR"] = str(directory)
        import ultralytics.nn.tasks
        import ultralytics.utils.nms  # noqa: F401
    finally:
        torch.set_num_threads(threads)
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp


def _install_font(directory: Path) -> None:
    """Copy matplotlib's DejaVuSans.ttf as ``Arial.ttf`` and ``Arial.Unicode.ttf``.

    ultralytics looks for fonts in ``$YOLO_CONFIG_DIR/Ultralytics``; the top directory gets a copy too.
    """
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for folder in (directory, directory / "Ultralytics"):
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            if not (folder / name).exists():
                shutil.copyfile(source, folder / name)


class FirstOutput(nn.Module):
    """Only the prediction tensor of a detector that returns ``(predictions, extras)`` (traceable)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out[0] if isinstance(out, list | tuple) else out


class YoloModel(ImageModel):
    """Object detector: boxes in original-image pixels, best first, at most ``spec.top_k``."""

    family: ClassVar[Family] = "yolo"

    def __init__(
        self,
        spec: ModelSpec,
        net: nn.Module,
        labels: Sequence[str],
        device: str = "cpu",
        precision: str = "fp32",
        *,
        end2end: bool | None = None,
    ) -> None:
        super().__init__(spec, device, precision)
        self.net = net
        self.labels = tuple(labels)
        self._conf = float(spec.extra.get("conf", 0.25))
        self._iou = float(spec.extra.get("iou", 0.45))
        self._end2end = bool(getattr(net, "end2end", False)) if end2end is None else end2end
        self._zero = channel_tensor((0.0, 0.0, 0.0), device)  # pixels / 255, as ultralytics
        self._full_scale = channel_tensor((255.0, 255.0, 255.0), device)

    @classmethod
    def load(
        cls, spec: ModelSpec, artifact_dir: Path, device: str = "cpu", precision: str = "fp32"
    ) -> YoloModel:
        """Load the checkpoint or build the yaml, fuse conv+bn, move to ``device``.

        Raises:
            FileNotFoundError: if a ``.pt`` checkpoint is missing (never downloaded).
            ValueError: if the input size is not a multiple of the stride, or labels do not fit.
        """
        config_dir = spec.extra.get("yolo_config_dir")
        import_ultralytics(Path(config_dir) if config_dir else None)
        threads = torch.get_num_threads()
        try:
            net = _load_net(spec, Path(artifact_dir))
        finally:
            torch.set_num_threads(threads)
        stride = int(max(net.stride)) if hasattr(net, "stride") else 32
        if spec.input_size % stride:
            raise ValueError(f"input_size {spec.input_size} is not a multiple of the stride {stride}")
        names = getattr(net, "names", None) or {}
        labels = spec.labels or tuple(names[i] for i in sorted(names))
        num_classes = int(getattr(net, "nc", 0) or getattr(net.model[-1], "nc", 0))
        if num_classes and len(labels) != num_classes:
            raise ValueError(f"{len(labels)} labels for a detector with {num_classes} classes")
        net = net.to(device).eval()
        end2end = bool(getattr(net, "end2end", False))
        if device == "cpu" and spec.extra.get("torchscript", True):
            size, generator = spec.input_size, torch.Generator().manual_seed(0)
            net = traced_forward(
                FirstOutput(net),
                lambda n: torch.rand(n, 3, size, size, generator=generator).to(device),
                name=f"yolo {spec.extra.get('yaml', spec.weights)}",
            )
            torch.set_num_threads(threads)
        return cls(spec, net, labels, device, precision, end2end=end2end)

    def prepare(self, image: np.ndarray) -> Prepared:
        """Letterbox to ``input_size``; ``meta`` keeps the scale and padding."""
        array, scale, pad = letterbox(image, self.spec.input_size)
        return Prepared(
            array=array, original_size=(image.shape[1], image.shape[0]), meta={"scale": scale, "pad": pad}
        )

    def predict_batch(self, batch: Sequence[Prepared]) -> list[ModelOutput]:
        """Detections per input, in order, boxes in original-image pixels, best first."""
        from ultralytics.utils.nms import non_max_suppression

        if not batch:
            return []
        enforce_threads()
        with torch.inference_mode():
            with autocast(self.device, self.precision):
                x = normalised_batch(batch, self.device, self._zero, self._full_scale)
                raw = self.net(x)
            pred = raw[0] if isinstance(raw, list | tuple) else raw
            detections = non_max_suppression(
                pred.float(), self._conf, self._iou, max_det=self.spec.top_k, end2end=self._end2end
            )
        return [self._to_output(d.cpu().numpy(), item) for d, item in zip(detections, batch, strict=True)]

    def _to_output(self, rows: np.ndarray, item: Prepared) -> ModelOutput:
        scale = float(item.meta["scale"])
        pad_x, pad_y = item.meta["pad"]
        width, height = item.original_size
        boxes = rows[:, :4].astype(np.float64)
        boxes[:, [0, 2]] = np.clip((boxes[:, [0, 2]] - pad_x) / scale, 0.0, width)
        boxes[:, [1, 3]] = np.clip((boxes[:, [1, 3]] - pad_y) / scale, 0.0, height)
        order = np.argsort(-rows[:, 4], kind="stable")
        predictions = [
            Prediction(self._label(int(rows[i, 5])), float(rows[i, 4]), tuple(float(v) for v in boxes[i]))
            for i in order
        ]
        return ModelOutput(predictions=predictions)

    def _label(self, index: int) -> str:
        return self.labels[index] if 0 <= index < len(self.labels) else str(index)

    def close(self) -> None:
        """Drop the network (and its GPU memory)."""
        self.net = nn.Identity()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def _load_net(spec: ModelSpec, artifact_dir: Path) -> Any:
    from ultralytics.nn.tasks import DetectionModel, load_checkpoint

    weights = spec.weights
    local = artifact_dir / weights
    if weights.endswith((".yaml", ".yml")):
        cfg = str(local) if local.is_file() else weights
        net = DetectionModel(cfg, nc=len(spec.labels) or None, verbose=False)
        if spec.labels:
            net.names = dict(enumerate(spec.labels))
        return net.fuse(verbose=False).eval()
    if not local.is_file():
        raise FileNotFoundError(f"YOLO checkpoint not found: {local}")
    net, _ = load_checkpoint(str(local), device="cpu", fuse=True)
    return net
