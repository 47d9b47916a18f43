"""Cross-checks ckhost's conversion kernels against implementations that share no code with them.

  bf16 / f16 decode of all 65536 patterns, and encode of ~1M f32 inputs:  PyTorch (and numpy for f16)
  fp8 E4M3FN / E5M2 decode of all 256 codes:  a pure-Python decode of the bit fields
  fp8 encode in both modes of the same inputs: a numpy nearest-value search over the format's values
      (ties to the even code; overflow = rounding past the largest finite value, as PyTorch's
      float8_e4m3fn cast does; torch 1.13 itself has no float8 dtypes)

Usage: torch_crosscheck.py <ckh-kernels-dump> [isa]. Exits 77 (ctest: skipped) when /usr/bin/python3
cannot import torch.
"""
import math
import subprocess
import sys

try:
    import numpy as np
    import torch
except ImportError:
    print("torch/numpy not importable: skipped")
    sys.exit(77)

np.seterr(all="ignore")
raw = subprocess.run(sys.argv[1:], capture_output=True, check=True).stdout
assert raw[:4] == b"CKHK", "bad dump header"
M = int(np.frombuffer(raw[4:8], dtype=np.uint32)[0])
isa = raw[8:24].split(b"\0")[0].decode()
off = 24


def take(count, dtype):
    global off
    a = np.frombuffer(raw, dtype=dtype, count=count, offset=off)
    off += a.nbytes
    return a


bf_dec, h_dec = take(65536, np.float32), take(65536, np.float32)
e4_dec, e5_dec = take(256, np.float32), take(256, np.float32)
inputs = take(M, np.float32)
bf_enc, h_enc = take(M, np.uint16), take(M, np.uint16)
e4_ns, e4_sat, e5_ns, e5_sat = (take(M, np.uint8) for _ in range(4))
assert off == len(raw), "dump size mismatch"

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    if not ok:
        failures.append(name)


def same_values(got, ref):
    return (got == ref) | (np.isnan(got) & np.isnan(ref))


# ---- bf16 / f16 decode: every pattern -------------------------------------------------------------
pat = torch.arange(65536, dtype=torch.int32).to(torch.int16)
for name, got, ref in [("bf16 decode (torch)", bf_dec, pat.view(torch.bfloat16).float().numpy()),
                       ("f16 decode (torch)", h_dec, pat.view(torch.float16).float().numpy()),
                       ("f16 decode (numpy)", h_dec, np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32))]:
    same = same_values(got, ref)
    i = int(np.argmin(same))
    check(name, bool(same.all()), f"pattern 0x{i:04x}: got {got[i]!r}, want {ref[i]!r}")

# ---- bf16 / f16 encode: NaN payload conventions differ between libraries, so NaN inputs are left out
finite_or_inf = ~np.isnan(inputs)
x = inputs[finite_or_inf]
tx = torch.from_numpy(x.copy())
for name, got, ref in [("bf16 encode (torch)", bf_enc[finite_or_inf], tx.bfloat16().view(torch.int16).numpy().view(np.uint16)),
                       ("f16 encode (torch)", h_enc[finite_or_inf], tx.half().view(torch.int16).numpy().view(np.uint16)),
                       ("f16 encode (numpy)", h_enc[finite_or_inf], x.astype(np.float16).view(np.uint16))]:
    bad = np.nonzero(got != ref)[0]
    i = int(bad[0]) if len(bad) else 0
    check(name + f" [{len(x)} inputs]", len(bad) == 0,
          f"{len(bad)} differ; input {x[i]!r} (0x{x[i:i+1].view(np.uint32)[0]:08x}): got 0x{got[i]:04x}, want 0x{ref[i]:04x}")
nan_in = np.isnan(inputs)
check("bf16/f16 encode of NaN is NaN", bool(((bf_enc[nan_in] & 0x7FFF) > 0x7F80).all() and ((h_enc[nan_in] & 0x7FFF) > 0x7C00).all()))


# ---- fp8 decode: pure Python from the bit fields ----------------------------------------------------
def fp8_value(code, ebits, mbits, bias, ieee):
    """Value of an fp8 code (None for NaN), from the format definition."""
    s = -1.0 if code & 0x80 else 1.0
    e = (code >> mbits) & ((1 << ebits) - 1)
    m = code & ((1 << mbits) - 1)
    emax = (1 << ebits) - 1
    if ieee and e == emax:
        return s * math.inf if m == 0 else None
    if not ieee and e == emax and m == (1 << mbits) - 1:
        return None  # E4M3FN: S.1111.111 is NaN, there is no Inf
    if e == 0:
        return s * math.ldexp(m, 1 - bias - mbits)
    return s * math.ldexp((1 << mbits) + m, e - bias - mbits)


FMT = {"e4m3": (4, 3, 7, False), "e5m2": (5, 2, 15, True)}
for name, got in [("e4m3", e4_dec), ("e5m2", e5_dec)]:
    bad = []
    for c in range(256):
        want = fp8_value(c, *FMT[name])
        g = float(got[c])
        if (want is None and not math.isnan(g)) or (want is not None and not (g == want and math.copysign(1, g) == math.copysign(1, want))):
            bad.append(f"0x{c:02x}: got {g!r}, want {want!r}")
    check(f"{name} decode (bit fields) [256 codes]", not bad, "; ".join(bad[:4]))
check("e4m3 decode NaN bits = sign | 0x7FF00000 (as PyTorch)",
      e4_dec.view(np.uint32)[0x7F] == 0x7FF00000 and e4_dec.view(np.uint32)[0xFF] == 0xFFF00000)


# ---- fp8 encode: nearest representable value, ties to the even code ---------------------------------
def fp8_encode_ref(xs, name, saturate):
    ebits, mbits, bias, ieee = FMT[name]
    maxc = 0x7B if ieee else 0x7E
    vals = np.array([fp8_value(c, *FMT[name]) for c in range(maxc + 1)], dtype=np.float64)
    # One more "code" just past max finite, read as a plain normal number: 480 (E4M3FN), 65536 (E5M2).
    e, m = (maxc + 1) >> mbits, (maxc + 1) & ((1 << mbits) - 1)
    ext = np.append(vals, math.ldexp((1 << mbits) + m, e - bias - mbits))
    ax = np.abs(xs.astype(np.float64))
    idx = np.searchsorted(ext, ax, side="left")  # ext[idx-1] < ax <= ext[idx]
    over = idx >= len(ext)
    idx = np.minimum(idx, len(ext) - 1)
    lo = np.maximum(idx - 1, 0)
    mid = (ext[lo] + ext[idx]) / 2  # exact: fp8 values have few significant bits
    code = np.where(ax == ext[idx], idx, np.where(ax > mid, idx, np.where(ax < mid, lo, np.where(idx % 2 == 0, idx, lo))))
    code = np.where(over, maxc + 1, code)  # past the extra value (includes Inf)
    if saturate:
        code = np.minimum(code, maxc)
    else:
        code = np.where(code > maxc, 0x7C if ieee else 0x7F, code)  # Inf / NaN
    code = np.where(np.isnan(xs), 0x7F, code)
    return (code | np.where(np.signbit(xs), 0x80, 0)).astype(np.uint8)


for name, mode, got in [("e4m3", "nonsat", e4_ns), ("e4m3", "sat", e4_sat), ("e5m2", "nonsat", e5_ns), ("e5m2", "sat", e5_sat)]:
    ref = fp8_encode_ref(inputs, name, mode == "sat")
    bad = np.nonzero(got != ref)[0]
    i = int(bad[0]) if len(bad) else 0
    check(f"{name} encode {mode} (nearest-value model) [{M} inputs]", len(bad) == 0,
          f"{len(bad)} differ; input {inputs[i]!r} (0x{inputs[i:i+1].view(np.uint32)[0]:08x}): got 0x{got[i]:02x}, want 0x{ref[i]:02x}")

# PyTorch's documented E4M3FN facts (c10 fp8e4m3fn_from_fp32_value), through the model.
facts = np.array([448, 460, 464, np.nextafter(np.float32(464), np.float32(1e9)), 480, 1e6, np.inf], dtype=np.float32)
check("e4m3 nonsat facts: 448,460,464 -> 0x7E; >464, Inf -> 0x7F",
      list(fp8_encode_ref(facts, "e4m3", False)) == [0x7E, 0x7E, 0x7E, 0x7F, 0x7F, 0x7F, 0x7F])

print(f"table {isa}: {len(failures)} failed" if failures else f"table {isa}: all checks passed")
sys.exit(1 if failures else 0)
