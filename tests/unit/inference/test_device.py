"""Device helpers: CPU paths here; the CUDA paths run where a GPU is present (marked ``gpu``)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from inference import device as dev

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_resolve_device() -> None:
    assert dev.resolve_device("cpu") == "cpu"
    assert dev.resolve_device(" CPU ") == "cpu"
    assert dev.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError):
        dev.resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_a_gpu_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        dev.resolve_device("cuda")


def test_configure_torch_sets_once_and_enforce_restores(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError):
        dev.configure_torch(0)
    dev.configure_torch(1)
    assert torch.get_num_threads() == 1 and dev.configured_threads() == 1
    with caplog.at_level(logging.WARNING, logger="inference.device"):
        dev.configure_torch(2)
    assert torch.get_num_threads() == 1 and "ignoring 2" in caplog.text
    torch.set_num_threads(2)  # e.g. a third-party predict() helper
    dev.enforce_threads()
    assert torch.get_num_threads() == 1


def test_autocast_is_a_no_op_on_cpu() -> None:
    a = torch.ones(4, 4)
    for precision in ("fp32", "fp16", "bf16"):
        with dev.autocast("cpu", precision):
            assert (a @ a).dtype == torch.float32
    with pytest.raises(ValueError), dev.autocast("cpu", "int8"):
        pass


def test_to_device_on_cpu_shares_memory_and_keeps_dtype() -> None:
    batch = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    tensor = dev.to_device(batch, "cpu")
    assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == (2, 3, 4, 4)
    assert np.shares_memory(tensor.numpy(), batch)


def test_to_device_makes_non_contiguous_input_contiguous() -> None:
    batch = np.zeros((2, 4, 4, 3), np.float32).transpose(0, 3, 1, 2)
    assert dev.to_device(batch, "cpu").is_contiguous()


@pytest.mark.gpu
@needs_cuda
def test_to_device_on_cuda_is_asynchronous_and_correct() -> None:
    batch = np.random.default_rng(0).integers(0, 255, (8, 3, 32, 32), dtype=np.uint8)
    tensor = dev.to_device(batch, "cuda")
    assert tensor.is_cuda and tensor.dtype == torch.uint8
    torch.cuda.synchronize()
    assert np.array_equal(tensor.cpu().numpy(), batch)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(("precision", "dtype"), [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_autocast_on_cuda(precision: str, dtype: torch.dtype) -> None:
    a = torch.ones(8, 8, device="cuda")
    with dev.autocast("cuda", precision):
        assert (a @ a).dtype == dtype
    with dev.autocast("cuda", "fp32"):
        assert (a @ a).dtype == torch.float32
