"""What this CPU can do, as the kernel reports it (`/proc/cpuinfo`); read once per process.

The backend chosen by default depends on it (`backends.choose`): a model folder is exported once
and runs on whatever CPU its user has, so the choice is made where it runs, not at export.
"""

from __future__ import annotations

from functools import cache

# int8 dot-product instructions: AVX-512 VNNI (Intel Ice Lake+, AMD Zen 4+), AVX-VNNI (Intel
# Alder Lake+), AMX (Intel Sapphire Rapids+). Without them (e.g. AMD Zen 3, AVX2 only) int8
# GEMMs multiply with vpmaddubsw, where ONNX Runtime's kernels measured faster than OpenVINO's.
INT8_DOT = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@cache
def flags() -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is unreadable, e.g. not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_int8_dot() -> bool:
    """Whether the CPU has an int8 dot-product instruction (VNNI or AMX)."""
    return bool(flags() & INT8_DOT)
