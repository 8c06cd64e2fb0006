"""What the figures were measured on: CPU, cores, memory, load, library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "onnxruntime",
    "numpy",
    "pillow",
    "tokenizers",
    "faiss-cpu",
    "torch",
    "transformers",
    "optimum-onnx",
    "onnx",
)


def _cpuinfo() -> tuple[str, set[str], int]:
    name, flags, cores = platform.processor() or platform.machine(), set(), set()
    phys = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name":
                name = value
            elif key == "flags":
                flags = set(value.split())
            elif key == "physical id":
                phys = value
            elif key == "core id":
                cores.add((phys, value))
    except OSError:
        pass
    return name, flags, len(cores) or (os.cpu_count() or 1)


def _mem_total_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return 0.0


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def describe() -> dict:
    name, flags, physical = _cpuinfo()
    isa = [
        f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags
    ]
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "-"
    return {
        "cpu": name,
        "isa": isa,
        "physical_cores": physical,
        "logical_cpus": os.cpu_count(),
        "memory_gb": round(_mem_total_gb(), 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }
