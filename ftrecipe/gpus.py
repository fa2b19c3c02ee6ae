"""Accelerators a recipe can declare (``hardware.gpu``): memory and peak throughput, for `ftrecipe plan`.

Memory is what the device reports (``nvidia-smi``'s total, in MiB); throughput is the vendor's dense
(no sparsity) tensor-core figure for 16-bit inputs and the plain fp32 figure. Torch-free: the
section that names them is read by every ``ftrecipe validate``.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_bytes: int
    tflops_16bit: float
    """Dense bf16 (fp16 where the device has no bf16) tensor-core peak."""
    tflops_fp32: float


GPUS: dict[str, Gpu] = {
    gpu.name: gpu
    for gpu in (
        Gpu("h200", 143_771 * MIB, 989.0, 67.0),
        Gpu("h100-80gb", 81_559 * MIB, 989.0, 67.0),
        Gpu("a100-80gb", 81_920 * MIB, 312.0, 19.5),
        Gpu("a100-40gb", 40_960 * MIB, 312.0, 19.5),
        Gpu("l40s", 46_068 * MIB, 362.0, 91.6),
        Gpu("a6000", 49_140 * MIB, 154.8, 38.7),
        Gpu("a10g", 23_028 * MIB, 70.0, 31.2),
        Gpu("l4", 23_034 * MIB, 121.0, 30.3),
        Gpu("rtx-4090", 24_564 * MIB, 165.2, 82.6),
        Gpu("rtx-3090", 24_576 * MIB, 71.0, 35.6),
        Gpu("v100-32gb", 32_768 * MIB, 125.0, 15.7),
        Gpu("v100-16gb", 16_160 * MIB, 125.0, 15.7),
        Gpu("t4", 15_360 * MIB, 65.0, 8.1),
    )
}
"""Known accelerators by the name a recipe uses."""
