"""Let every Python process of the local CPU run use this machine's AMX units (Linux, x86-64).

The local runner puts this folder on PYTHONPATH, so Python imports this module at start-up in each process
it launches: `ray start`, Ray's workers, and the vLLM engine and worker processes they spawn.

Why: Linux gives a process the AMX tile-data state (XSTATE component 18) only after the process asks for it
with `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`; until then the first AMX instruction is trapped
and the process dies with SIGILL (kernel docs, Documentation/arch/x86/xstate.rst). The permission belongs to
one process, so vLLM's freshly spawned workers start without it. oneDNN asks before its own AMX kernels, but
vLLM 0.29's CPU attention picks its AMX kernel whenever `torch.cpu._is_amx_tile_supported()` and the dtype is
bfloat16 (`vllm/v1/attention/backends/cpu_attn.py`, `_get_attn_isa`) and never asks: when the first forward
pass of a new engine is a one-token prompt, no oneDNN AMX kernel has run yet, and the worker dies in
`tilezero` (`csrc/cpu/cpu_attn_amx.hpp`). Asking here, in every process, makes that pass safe. On a CPU
without AMX, or on another platform, nothing is asked and nothing changes.
"""

from __future__ import annotations

import ctypes
import platform
import sys

SYS_ARCH_PRCTL = 158  # the arch_prctl system call on x86-64 (arch/x86/entry/syscalls/syscall_64.tbl)
ARCH_GET_XCOMP_PERM = 0x1022  # arch/x86/include/uapi/asm/prctl.h
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18


def request_amx_tile_data() -> bool:
    """Ask Linux for the AMX tile-data state for this process; True when the process now has it."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)  # fails harmlessly without AMX
        permitted = ctypes.c_uint64(0)
        if libc.syscall(SYS_ARCH_PRCTL, ARCH_GET_XCOMP_PERM, ctypes.byref(permitted)) != 0:
            return False
    except (OSError, AttributeError):
        return False
    return bool(permitted.value >> XFEATURE_XTILEDATA & 1)


request_amx_tile_data()
