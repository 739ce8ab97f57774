# The exact selective scan with a hand-written backward (scan.c), compiled on
# first use with the system C compiler into a cache file keyed by the source's
# hash, loaded with ctypes. `available()` is False when no compiler works;
# model.py then falls back to the chunked PyTorch scan.
import ctypes
import hashlib
import os
import subprocess
import tempfile

import torch

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scan.c")
_lib = None
_tried = False


def _load():
    global _lib, _tried
    if _tried:
        return _lib
    _tried = True
    src = open(_SRC, "rb").read()
    cache = os.environ.get("SCAN_CACHE", tempfile.gettempdir())
    so = os.path.join(cache, "agentd-scan-%s.so" % hashlib.sha256(src).hexdigest()[:16])
    if not os.path.exists(so):
        tmp = "%s.%d.tmp" % (so, os.getpid())
        r = subprocess.run([os.environ.get("CC", "cc"), "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC",
                            "-o", tmp, _SRC, "-lm"], capture_output=True, text=True)
        if r.returncode != 0:
            return None
        os.replace(tmp, so)
    lib = ctypes.CDLL(so)
    i, p = ctypes.c_int, ctypes.c_void_p
    lib.scan_fwd.argtypes = [i, i, i, i] + [p] * 7
    lib.scan_bwd.argtypes = [i, i, i, i] + [p] * 12
    lib.scan_threads.argtypes = [i]
    lib.scan_threads(torch.get_num_threads())
    _lib = lib
    return lib


def available():
    return _load() is not None


def set_threads(n):
    if _load() is not None:
        _lib.scan_threads(n)


def _ptr(t):
    return ctypes.c_void_p(t.data_ptr())


class Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm):
        u, delta, A, Bm, Cm = (x.detach().float().contiguous() for x in (u, delta, A, Bm, Cm))
        b, t, d = u.shape
        n = A.shape[1]
        y = u.new_empty(b, t, d)
        S = u.new_empty(b, t, d, n) if ctx.needs_input_grad[0] or any(ctx.needs_input_grad) else None
        if _lib.scan_fwd(b, t, d, n, *map(_ptr, (u, delta, A, Bm, Cm, y)),
                         _ptr(S) if S is not None else None) != 0:
            raise RuntimeError("scan_fwd failed")
        ctx.save_for_backward(u, delta, A, Bm, Cm, S)
        return y

    @staticmethod
    def backward(ctx, gy):
        u, delta, A, Bm, Cm, S = ctx.saved_tensors
        gy = gy.float().contiguous()
        b, t, d = u.shape
        n = A.shape[1]
        gu, gdt, gA = torch.empty_like(u), torch.empty_like(delta), torch.empty_like(A)
        gB, gC = torch.empty_like(Bm), torch.empty_like(Cm)
        if _lib.scan_bwd(b, t, d, n, *map(_ptr, (u, delta, A, Bm, Cm, S, gy, gu, gdt, gA, gB, gC))) != 0:
            raise RuntimeError("scan_bwd failed")
        return gu, gdt, gA, gB, gC


def scan(u, delta, A, Bm, Cm):
    _load()
    return Scan.apply(u, delta, A, Bm, Cm)
