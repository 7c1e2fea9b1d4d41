"""Batch norm forward + backward with batch statistics on channels-last CPU batches: PyTorch's native
kernel against ``naolit.accel.batch_norm.PixelMatrixBatchNorm``, over channel counts and sizes.

    python experiments/accel/bench_batch_norm.py [--threads 2] [--repeats 30] [--out PATH]

``naolit.accel.batch_norm.PixelMatrixBatchNorm2d`` takes the pixel-matrix path where the channel count is below 32
and not a multiple of 16 and the batch holds at least 8192 pixels; this prints both timings for every
shape, and which one that rule picks, so the rule can be checked on another CPU. Times are medians in milliseconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/common.py
from common import ROOT, median_seconds, report  # noqa: E402
from naolit.accel.batch_norm import PixelMatrixBatchNorm, pixel_matrix_is_faster  # noqa: E402

SHAPES = [(32, c, 32, 32) for c in (8, 12, 16, 20, 24, 32, 40, 48)] + [
    (32, 8, 16, 16), (32, 8, 8, 8), (32, 24, 16, 16), (32, 40, 8, 8), (32, 16, 16, 16),
    (160, 20, 32, 32), (160, 40, 16, 16), (160, 80, 8, 8), (160, 60, 32, 32),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per shape and kernel")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "batch_norm.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for shape in SHAPES:
        channels = shape[1]
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_()
        weight, bias = torch.rand(channels, requires_grad=True), torch.rand(channels, requires_grad=True)
        grad_out = torch.randn(shape).contiguous(memory_format=torch.channels_last)

        def native() -> None:
            F.batch_norm(x, None, None, weight, bias, True, 0.0, 1e-5).backward(grad_out)

        def pixel_matrix() -> None:
            PixelMatrixBatchNorm.apply(x, weight, bias, 1e-5).backward(grad_out)

        native_ms, pixel_matrix_ms = (1000 * median_seconds(fn, args.repeats, warm_ups=3) for fn in (native, pixel_matrix))
        rows.append({"shape": list(shape), "native_ms": round(native_ms, 3), "pixel_matrix_ms": round(pixel_matrix_ms, 3),
                     "rule_picks": "pixel_matrix" if pixel_matrix_is_faster(x) else "native",
                     "faster": "pixel_matrix" if pixel_matrix_ms < native_ms else "native"})
        print(f"{str(shape):20s} native {native_ms:7.3f} ms   pixel matrix {pixel_matrix_ms:7.3f} ms   "
              f"rule picks {rows[-1]['rule_picks']}", flush=True)
    report({"threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "rule_agrees": sum(r["rule_picks"] == r["faster"] for r in rows), "shapes": len(rows), "rows": rows},
           args.out)


if __name__ == "__main__":
    main()
