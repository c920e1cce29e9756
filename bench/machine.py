"""Where the numbers came from: CPU, cores, memory, torch, GPU; and process memory (RSS, GPU)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def usable_cores() -> int | None:
    """The cores this process may run on (its CPU affinity), where the OS says."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def machine_info(device: str) -> dict[str, Any]:
    """CPU model, cores, memory, Python/torch versions and the GPU (when ``device`` is CUDA)."""
    from inference.device import torch_info

    torch = torch_info(device)
    return {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable_cores(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch["torch"],
        "torch_cuda": torch["torch_cuda"],
        "device": device,
        "gpu": torch["gpu"],
    }


def peak_rss_mb(pid: int | None = None) -> float | None:
    """Peak resident set size (``VmHWM``) of a process in MiB; None if unreadable."""
    path = Path(f"/proc/{pid or 'self'}/status")
    try:
        for line in path.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def gpu_memory_mb(pid: int) -> float | None:
    """GPU memory a process holds now, from ``nvidia-smi`` (None without it or when it holds none)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid) and parts[1].isdigit():
            return float(parts[1])
    return None


def reset_gpu_peak(device: str) -> None:
    """Start a new peak of torch's GPU memory in this process (no-op on CPU)."""
    from inference.device import reset_gpu_peak as reset

    reset(device)


def gpu_peak_mb(device: str) -> float | None:
    """Peak GPU memory torch allocated in this process since the last reset (MiB; None on CPU)."""
    from inference.device import gpu_peak_mb as peak

    return peak(device)
