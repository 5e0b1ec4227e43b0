"""Can this process's torch use the GPUs it was given? Said in one line, with the fix.

A trial that Ray gave a GPU but whose torch cannot use CUDA (an NVIDIA driver older than the
CUDA the installed torch was built for, a wrong CUDA_VISIBLE_DEVICES, a CPU-only torch) would
otherwise resolve ``device: auto`` to the CPU and train tens of times slower without a word.
No Ray here: the Ray layer passes the GPU ids it holds (``ray.get_gpu_ids()``).
"""
from __future__ import annotations

import os
import subprocess
import warnings

import torch


def nvidia_driver() -> str:
    """The NVIDIA driver's version in words, as the kernel module or nvidia-smi says it."""
    try:
        with open("/proc/driver/nvidia/version") as fh:
            line = fh.readline()
        for word in line.split():
            if word[:1].isdigit() and "." in word:
                return f"NVIDIA driver {word}"
    except OSError:
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        if out.returncode == 0 and out.stdout.strip():
            return f"NVIDIA driver {out.stdout.split()[0]}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "no NVIDIA driver found on this machine"


def cuda_unusable_reason() -> str | None:
    """None when torch can use CUDA; else why not, in one line (torch's own warning included:
    it names a driver that is too old)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if torch.cuda.is_available():
            return None
    said = " ".join(str(w.message).split())[:200] if caught else ""
    built = (f"built for CUDA {torch.version.cuda}" if torch.version.cuda
             else "a CPU-only build")
    return (f"torch {torch.__version__} ({built}) cannot use CUDA here: "
            f"torch.cuda.is_available() is False; {nvidia_driver()}; CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}" + (f"; torch says: {said}"
                                                                     if said else ""))


FIX = ("install a torch built for a CUDA your driver supports (README: GPUs and drivers), "
       "or give the trials no GPU (--gpus-per-trial 0)")


def refuse_unusable_gpus(gpu_ids) -> None:
    """RuntimeError in one line if this process holds GPUs that its torch cannot use."""
    if not gpu_ids:
        return
    reason = cuda_unusable_reason()
    if reason:
        raise RuntimeError(f"this trial holds GPU {list(gpu_ids)} but {reason}. Fix: {FIX}")
