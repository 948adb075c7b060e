"""Target twins: real Linux kernels under QEMU system emulation, reachable over loopback SSH.

A twin gives a check a real kernel and, on arm64, a PMUv3 the kernel's perf driver drives for real,
without a cloud account. Its counts are architectural (what the emulated CPU retires), never
micro-architectural: no performance figure measured on a twin means anything about hardware.
"""
