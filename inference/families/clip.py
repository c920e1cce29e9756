"""CLIP zero-shot classification (transformers ``CLIPModel`` from a local ``save_pretrained`` dir).

At load, every ``prompt.format(label)`` is encoded once; the normalised text embeddings are
averaged over the prompts of each label and normalised again (prompt ensembling). A prediction is
``softmax(logit_scale * cosine(image, label))``; the output's ``embedding`` is the normalised image
embedding. Image preprocessing follows ``preprocessor_config.json`` when present (resize the short
side, centre crop, OpenAI's mean/std) but runs in Pillow and on the device, not in the processor.
On CPU the image tower is served as a frozen TorchScript trace (``inference.jit``: no GIL during the
forward pass); ``extra["torchscript"] = False`` keeps it eager.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel, CLIPTokenizer

from inference.base import Family, ImageModel, ModelOutput, ModelSpec, Prepared
from inference.device import autocast, enforce_threads, to_device
from inference.families._common import (
    center_crop_resize,
    channel_tensor,
    normalise,
    normalised_batch,
    stack,
    top_k,
)
from inference.graphs import GraphedForward, buckets_up_to
from inference.jit import traced_forward

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # 0-1 units, as the processor config stores them
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_TEXT_CHUNK = 256


class ClipModel(ImageModel):
    """Zero-shot classifier over ``spec.labels`` with ``spec.prompts`` templates."""

    family: ClassVar[Family] = "clip"

    def __init__(
        self,
        spec: ModelSpec,
        model: CLIPModel,
        text_embeddings: torch.Tensor,
        processor: dict[str, Any],
        device: str = "cpu",
        precision: str = "fp32",
    ) -> None:
        super().__init__(spec, device, precision)
        self.model = model
        self.image_features: nn.Module = ImageFeatures(model)
        if device == "cpu" and spec.extra.get("torchscript", True):
            self.image_features = traced_forward(
                self.image_features, _example_input(spec.input_size, device), name="CLIP image tower"
            )
        self.text_embeddings = text_embeddings  # labels x dim, L2-normalised, float32, on device
        self._mean = channel_tensor([255.0 * m for m in processor.get("image_mean", OPENAI_MEAN)], device)
        self._std = channel_tensor([255.0 * s for s in processor.get("image_std", OPENAI_STD)], device)
        self._resample = "bicubic" if processor.get("resample", 3) == 3 else "bilinear"
        self._crop_ratio = _crop_ratio(processor, spec.input_size)
        self._logit_scale = float(model.logit_scale.detach().exp().clamp(max=100.0))
        # On CUDA the whole batch (normalise, image tower, similarities) replays as one CUDA graph.
        self._graphed: GraphedForward | None = None
        if device.startswith("cuda") and spec.extra.get("cuda_graphs", True):
            largest = int(spec.extra.get("max_graph_batch", 256))
            self._graphed = GraphedForward(self._forward, buckets_up_to(largest), name="CLIP image tower")

    @classmethod
    def load(
        cls, spec: ModelSpec, artifact_dir: Path, device: str = "cpu", precision: str = "fp32"
    ) -> ClipModel:
        """Load model and tokenizer from ``artifact_dir / spec.weights`` (local files only).

        Raises:
            FileNotFoundError: if the directory is missing.
            ValueError: if there are no labels, or a prompt has no ``{}``.
        """
        directory = Path(artifact_dir) / spec.weights
        if not directory.is_dir():
            raise FileNotFoundError(f"CLIP directory not found: {directory}")
        if not spec.labels:
            raise ValueError("CLIP spec needs labels")
        prompts = spec.prompts or ("{}",)
        if any("{}" not in prompt for prompt in prompts):
            raise ValueError(f"every prompt needs one '{{}}' for the label: {prompts}")
        model = CLIPModel.from_pretrained(directory, local_files_only=True).eval().to(device)
        tokenizer = CLIPTokenizer.from_pretrained(directory, local_files_only=True)
        processor_file = directory / "preprocessor_config.json"
        processor = json.loads(processor_file.read_text()) if processor_file.is_file() else {}
        vision_size = model.config.vision_config.image_size
        if vision_size != spec.input_size:
            raise ValueError(f"spec input_size {spec.input_size} != the model's image size {vision_size}")
        text = encode_labels(model, tokenizer, spec.labels, prompts, device)
        enforce_threads()
        return cls(spec, model, text, processor, device, precision)

    def prepare(self, image: np.ndarray) -> Prepared:
        """Resize the short side and centre-crop to ``input_size`` (bicubic, like CLIP's processor)."""
        array = center_crop_resize(image, self.spec.input_size, self._crop_ratio, self._resample)
        return Prepared(array=array, original_size=(image.shape[1], image.shape[0]))

    def predict_batch(self, batch: Sequence[Prepared]) -> list[ModelOutput]:
        """Top-k zero-shot predictions and the normalised image embedding, per input, in order."""
        if not batch:
            return []
        enforce_threads()
        with torch.inference_mode(), autocast(self.device, self.precision):
            if self._graphed is not None:
                image, probs = self._graphed(to_device(stack(batch), self.device))
            else:
                image, probs = self._score(normalised_batch(batch, self.device, self._mean, self._std))
        embeddings = image.cpu().numpy().astype(np.float32, copy=False)
        predictions = top_k(probs, self.spec.labels, self.spec.top_k)
        return [ModelOutput(predictions=p, embedding=embeddings[i].copy()) for i, p in enumerate(predictions)]

    def warmup(self, batch_size: int = 1) -> None:
        """One dummy batch; on CUDA also capture the graph of every batch size bucket."""
        super().warmup(batch_size)
        if self._graphed is not None:
            size = self.spec.input_size
            with torch.inference_mode(), autocast(self.device, self.precision):
                example = torch.zeros((1, 3, size, size), dtype=torch.uint8, device=self.device)
                self._graphed.capture_all(example)

    def _forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 N x 3 x H x W on the device → (normalised image embeddings, label probabilities)."""
        return self._score(normalise(pixels, self._mean, self._std))

    def _score(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same from normalised float pixels."""
        features = self.image_features(pixels)
        image = F.normalize(features.float(), dim=-1)
        return image, (self._logit_scale * image @ self.text_embeddings.T).softmax(dim=-1)

    def close(self) -> None:
        """Drop the model (and its GPU memory)."""
        self._graphed = None
        del self.model
        self.image_features = nn.Identity()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


def projected(features: Any) -> torch.Tensor:
    """The projected embeddings from ``get_image_features``/``get_text_features``: a tensor in
    transformers 4.x, a model output carrying them as ``pooler_output`` in 5.x."""
    return features if isinstance(features, torch.Tensor) else features.pooler_output


class ImageFeatures(nn.Module):
    """``pixels -> image embeddings`` (unnormalised): the part of CLIP that runs per batch."""

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return projected(self.model.get_image_features(pixel_values=pixels))


def _example_input(size: int, device: str) -> Callable[[int], torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return lambda batch_size: torch.randn(batch_size, 3, size, size, generator=generator).to(device)


@torch.inference_mode()
def encode_labels(
    model: CLIPModel, tokenizer: CLIPTokenizer, labels: Sequence[str], prompts: Sequence[str], device: str
) -> torch.Tensor:
    """Prompt-ensembled label embeddings: labels x dim, L2-normalised, float32.

    Args:
        model: the CLIP model.
        tokenizer: its tokenizer.
        labels: class names.
        prompts: templates with ``{}``.
        device: where the model is.

    Returns:
        For each label, the normalised mean of its normalised prompt embeddings.
    """
    texts = [prompt.format(label) for label in labels for prompt in prompts]
    max_length = model.config.text_config.max_position_embeddings
    chunks = []
    for start in range(0, len(texts), _TEXT_CHUNK):
        tokens = tokenizer(
            texts[start : start + _TEXT_CHUNK],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        chunks.append(F.normalize(projected(model.get_text_features(**tokens)).float(), dim=-1))
    per_prompt = torch.cat(chunks).view(len(labels), len(prompts), -1)
    return F.normalize(per_prompt.mean(dim=1), dim=-1)


def _crop_ratio(processor: dict[str, Any], input_size: int) -> float:
    """crop / shortest_edge from the processor config (1.0 when absent)."""
    shortest = processor.get("size", {})
    shortest = shortest.get("shortest_edge") if isinstance(shortest, dict) else shortest
    return float(input_size) / float(shortest) if shortest else 1.0
