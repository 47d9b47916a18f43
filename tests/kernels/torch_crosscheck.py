"""Cross-checks ckhost's bf16/f16 kernels against PyTorch's own conversions (an independent
implementation). fp8 is not in torch 1.13, so fp8 is checked by the exhaustive reference tests only.
Exit 77 (skipped) when /usr/bin/python3 has no torch."""
import subprocess
import sys

try:
    import torch
except ImportError:
    sys.exit(77)

raw = subprocess.run([sys.argv[1]], capture_output=True, check=True).stdout
n16, nf = 65536, 1 << 20
off = 0


def take(count, dtype, size):
    global off
    buf = bytearray(raw[off: off + count * size])
    off += count * size
    return torch.frombuffer(buf, dtype=dtype)


bf_dec, f16_dec = take(n16, torch.float32, 4), take(n16, torch.float32, 4)
inputs = take(nf, torch.float32, 4)
bf_enc, f16_enc = take(nf, torch.int16, 2), take(nf, torch.int16, 2)
all16 = torch.arange(n16, dtype=torch.int32).to(torch.int16)
ref_bf = all16.view(torch.bfloat16).float()
ref_h = all16.view(torch.float16).float()
ok = True
for name, got, ref in [("bf16 decode", bf_dec, ref_bf), ("f16 decode", f16_dec, ref_h)]:
    same = (got == ref) | (got.isnan() & ref.isnan())
    if not bool(same.all()):
        print(name, "differs from torch at", int((~same).nonzero()[0]))
        ok = False
for name, got, ref in [("bf16 encode", bf_enc, inputs.bfloat16().view(torch.int16)),
                       ("f16 encode", f16_enc, inputs.half().view(torch.int16))]:
    if not torch.equal(got, ref):
        i = int((got != ref).nonzero()[0])
        print(name, "differs from torch at input", inputs[i].item(), hex(got[i].item() & 0xFFFF), hex(ref[i].item() & 0xFFFF))
        ok = False
print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
sys.exit(0 if ok else 1)
