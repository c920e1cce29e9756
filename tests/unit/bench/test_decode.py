"""``python -m bench.decode``: every candidate runs on real frames, its pixels are checked against Pillow
at the same scale, and the report names the fastest correct one."""

from __future__ import annotations

import json
from pathlib import Path

from bench import decode


def test_a_short_run_measures_every_candidate_and_names_the_fastest_correct(tmp_path: Path) -> None:
    out = tmp_path / "decode.json"
    argv = ["--image-sizes", "96x64", "--input-size", "32", "--frames", "8", "--batch", "4"]
    assert (
        decode.main([*argv, "--seconds", "0.05", "--threads", "2", "--processes", "1", "--out", str(out)])
        == 0
    )
    report = json.loads(out.read_text())
    assert report["schema"] == decode.SCHEMA and report["machine"]["cpu_cores"]
    names = [row["candidate"] for row in report["results"]]
    expected = {
        "worker/threads:2",
        "worker/threads:1",
        "worker/processes:1",
        "pillow/threads:2",
        "pillow-draft/threads:2",
        "simplejpeg/threads:2",
        "torchvision-cpu/threads:2",
    }
    assert expected <= set(names) and len(names) == len(set(names))
    for row in report["results"]:
        assert row["frame_size"] == "96x64" and row["input_size"] == 32
        assert row["images"] >= 8 and row["images_per_s"] > 0 and row["decode_cpu_ms_per_image"] > 0
        assert row["correct"] == (row["mean_abs_diff_levels"] <= decode.TOLERANCE_LEVELS)
    by_name = {row["candidate"]: row for row in report["results"]}
    # 96x64 -> 32: the worker's DCT-domain downscaling (1/2) reads the pixels Pillow's draft reads
    for name in ("worker/threads:2", "worker/processes:1", "simplejpeg/threads:2"):
        assert by_name[name]["reference"] == "pillow-draft" and by_name[name]["mean_abs_diff_levels"] < 0.5
        assert by_name[name]["full_decode_mean_abs_diff_levels"] > 0  # the reduction does change pixels
    assert by_name["pillow/threads:2"]["mean_abs_diff_levels"] == 0  # it is the reference
    assert by_name["torchvision-cpu/threads:2"]["reference"] == "pillow"
    assert by_name["torchvision-cpu/threads:2"]["correct"]
    fastest = report["fastest_correct"]["96x64"]
    assert (
        fastest
        == max((row for row in report["results"] if row["correct"]), key=lambda row: row["images_per_s"])[
            "candidate"
        ]
    )


def test_the_worker_candidate_decodes_with_the_workers_rule() -> None:
    frame = decode.camera_frames(1, (640, 480))[0]
    assert decode.decode_worker(frame, 224).shape == (3, 224, 224)
    assert (decode.decode_worker(frame, 224) == decode.decode_simplejpeg(frame, 224)).all()


def test_candidates_can_be_narrowed_to_some_decoders() -> None:
    names = [c.name for c in decode.candidates(2, 3, cuda=True, only=("worker", "nvjpeg-cuda"))]
    assert names == ["worker/threads:2", "worker/threads:1", "worker/processes:3", "nvjpeg-cuda/batch"]


def test_the_device_candidate_decodes_a_batch_in_one_call() -> None:
    """The nvJPEG candidate's code, on the CPU (torchvision's libjpeg-turbo in place of nvJPEG)."""
    frames = decode.camera_frames(5, (128, 96))
    with decode.Candidate("nvjpeg-cuda", "batch", 1, device="cpu") as candidate:
        on_host, seconds = candidate.decode(frames, 32, to_host=True)
        kept, _ = candidate.decode(frames, 32)
    assert candidate.name == "nvjpeg-cuda/batch" and seconds > 0 and kept == []
    chunk, _ = decode.decode_chunk("torchvision-cpu", frames, 32)
    assert len(on_host) == 5 and all((a == b).all() for a, b in zip(on_host, chunk, strict=True))
