# SPDX-License-Identifier: Apache-2.0
"""What the Python benches share (bench/density-bench.py, bench/slab-bench.py)."""


def meminfo_kib(fields):
    """The named /proc/meminfo fields, in KiB."""
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            if k in fields:
                out[k] = int(v.split()[0])
    return out
