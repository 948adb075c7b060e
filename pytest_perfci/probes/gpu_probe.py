#!/usr/bin/env python3
"""Gather what the GPU suite judges, on the host, with the standard library only; print one JSON object.

Reads the NVIDIA driver's /proc and /sys entries, runs nvidia-smi twice (-q, and --query-gpu as CSV), and
uses CUDA through ctypes (libcuda.so.1, the driver API: no toolkit needed): cuInit, cuDriverGetVersion,
cuDeviceGetCount, and per device cuDeviceGet, cuDeviceGetName, cuDeviceTotalMem_v2, cuCtxCreate_v2,
cuMemAlloc_v2 + cuMemFree_v2 of ALLOC_BYTES, cuCtxDestroy_v2. Nothing is judged here: every absence and
every error code is reported as seen, and pytest_perfci/checks/gpu.py turns it into a verdict.

Usage: gpu_probe.py [--no-cuda]
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys

ALLOC_BYTES = 64 << 20  # 64 MiB: enough to need real device memory, small beside any GPU
QUERY = "index,name,pci.bus_id,memory.total,ecc.mode.current,ecc.mode.pending,driver_version"
SMI_TIMEOUT = 120  # -q on 8 GPUs takes seconds; a wedged driver must not hang the suite


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def smi_path():
    found = shutil.which("nvidia-smi")
    if found:
        return found
    for candidate in ("/usr/bin/nvidia-smi", "/usr/local/nvidia/bin/nvidia-smi"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def run(argv):
    if argv[0] is None:
        return {"rc": None, "stdout": "", "stderr": "", "error": "nvidia-smi not found on PATH"}
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=SMI_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return {"rc": None, "stdout": "", "stderr": "", "error": f"{argv[0]} timed out after {SMI_TIMEOUT} s"}
    except OSError as exc:
        return {"rc": None, "stdout": "", "stderr": "", "error": f"{argv[0]}: {exc.strerror or exc}"}
    return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "error": ""}


def cuda_probe():
    out = {"library": None, "load_error": "", "driver_version": None, "steps": [], "device_count": None,
           "devices": [], "allocated_bytes": 0}
    lib = None
    errors = []
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            lib = ctypes.CDLL(name)
            out["library"] = name
            break
        except OSError as exc:
            errors.append(str(exc))
    if lib is None:
        out["load_error"] = "; ".join(errors)
        return out

    def error_name(result):
        text = ctypes.c_char_p()
        try:
            if lib.cuGetErrorName(result, ctypes.byref(text)) == 0 and text.value:
                return text.value.decode()
        except AttributeError:
            pass
        return ""

    def call(fn_names, *args, device=None):
        fn = None
        for fn_name in fn_names:
            fn = getattr(lib, fn_name, None)
            if fn is not None:
                break
        step = {"call": fn_names[0]}
        if device is not None:
            step["device"] = device
        if fn is None:
            step.update(result=-1, name="symbol not found in " + out["library"])
        else:
            result = fn(*args)
            step.update(result=result, name=error_name(result) if result else "CUDA_SUCCESS")
        out["steps"].append(step)
        return step["result"] == 0

    version = ctypes.c_int()
    if call(("cuDriverGetVersion",), ctypes.byref(version)):
        out["driver_version"] = version.value
    if not call(("cuInit",), 0):
        return out
    count = ctypes.c_int()
    if not call(("cuDeviceGetCount",), ctypes.byref(count)):
        return out
    out["device_count"] = count.value
    allocated = None
    for index in range(count.value):
        dev = ctypes.c_int()
        if not call(("cuDeviceGet",), ctypes.byref(dev), index, device=index):
            break
        name = ctypes.create_string_buffer(256)
        call(("cuDeviceGetName",), name, 256, dev, device=index)
        total = ctypes.c_size_t()
        call(("cuDeviceTotalMem_v2", "cuDeviceTotalMem"), ctypes.byref(total), dev, device=index)
        out["devices"].append({"index": index, "name": name.value.decode(errors="replace"),
                               "total_mib": total.value >> 20})
        ctx = ctypes.c_void_p()
        if not call(("cuCtxCreate_v2", "cuCtxCreate"), ctypes.byref(ctx), 0, dev, device=index):
            break
        ptr = ctypes.c_uint64()
        ok = call(("cuMemAlloc_v2", "cuMemAlloc"), ctypes.byref(ptr), ctypes.c_size_t(ALLOC_BYTES), device=index)
        if ok and call(("cuMemFree_v2", "cuMemFree"), ptr, device=index):
            allocated = ALLOC_BYTES if allocated is None else min(allocated, ALLOC_BYTES)
        call(("cuCtxDestroy_v2", "cuCtxDestroy"), ctx, device=index)
        if not ok:
            break
    out["allocated_bytes"] = allocated or 0
    return out


def main(argv):
    smi = smi_path()
    gpus_dir = "/proc/driver/nvidia/gpus"
    report = {
        "proc_driver": os.path.isdir("/proc/driver/nvidia"),
        "driver_version_file": read("/proc/driver/nvidia/version"),
        "proc_gpus": sorted(os.listdir(gpus_dir)) if os.path.isdir(gpus_dir) else [],
        "module_loaded": os.path.isdir("/sys/module/nvidia"),
        "params": read("/proc/driver/nvidia/params"),
        "smi_path": smi,
        "smi_q": run([smi, "-q"]),
        "smi_csv": run([smi, f"--query-gpu={QUERY}", "--format=csv"]),
        "cuda": {} if "--no-cuda" in argv else cuda_probe(),
        "euid": os.geteuid(),
    }
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
