"""Writes the .npy fixtures of the format-npy tests with real NumPy (np.save / np.lib.format).

    gen_npy.py OUT_DIR

OUT_DIR/reader/   a checkpoint directory: arrays of every supported dtype, C and Fortran order, 0-d,
                  empty, v2.0/v3.0 headers, side files, a subdirectory and a hidden file;
                  OUT_DIR/reader.json describes each array (descr, shape, fortran, data offset).
OUT_DIR/cases/    one file per parser case: ok_*.npy must parse, bad_*.npy must be refused.
"""
import json
import os
import struct
import sys

import numpy as np

out = sys.argv[1]
rd = os.path.join(out, "reader")
cs = os.path.join(out, "cases")
os.makedirs(os.path.join(rd, "sub"), exist_ok=True)
os.makedirs(cs, exist_ok=True)

# ---- a checkpoint directory --------------------------------------------------------------------------
# Values are the C-order linear index (cast), so a reader can check any element from its position.
arrays = {
    "w": np.arange(600, dtype=np.float32).reshape(30, 20),
    "fortran": np.asfortranarray(np.arange(24, dtype=np.int64).reshape(2, 3, 4)),
    "fortran2d": np.asfortranarray(np.arange(35, dtype=np.float32).reshape(5, 7)),
    "scalar": np.array(3.5, dtype=np.float64),
    "empty": np.zeros((0, 3), np.float16),
    "mask": np.array([True, False, True]),
    "half": np.arange(12, dtype=np.float16).reshape(3, 4),
    "f64": np.arange(6, dtype=np.float64),
    "i8": np.arange(-3, 4, dtype=np.int8),
    "u8": np.arange(7, dtype=np.uint8),
    "i16": np.arange(5, dtype=np.int16),
    "u16": np.arange(5, dtype=np.uint16),
    "i32": np.arange(5, dtype=np.int32),
    "u32": np.arange(5, dtype=np.uint32),
    "u64": np.arange(5, dtype=np.uint64),
    "model.layers.0.mlp.up_proj.weight": np.arange(8, dtype=np.float32).reshape(4, 2),
}
manifest = {}
for name, a in arrays.items():
    p = os.path.join(rd, name + ".npy")
    np.save(p, a)
    size = os.path.getsize(p)
    manifest[name] = {"descr": a.dtype.str, "shape": list(a.shape), "fortran": bool(a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous),
                      "offset": size - a.nbytes, "file_size": size, "version": 1}
for name, ver in (("v2", (2, 0)), ("v3", (3, 0))):
    a = np.arange(10, dtype=np.float32).reshape(2, 5)
    p = os.path.join(rd, name + ".npy")
    with open(p, "wb") as f:
        np.lib.format.write_array(f, a, version=ver)
    size = os.path.getsize(p)
    manifest[name] = {"descr": "<f4", "shape": [2, 5], "fortran": False, "offset": size - a.nbytes,
                      "file_size": size, "version": ver[0]}
with open(os.path.join(rd, "config.json"), "w") as f:
    json.dump({"model_type": "llama", "hidden_size": 64, "name": "caf\u00e9 \"q\""}, f, indent=2)
with open(os.path.join(rd, "tokenizer.json"), "w") as f:
    f.write('{"version": "1.0"}\n')
with open(os.path.join(rd, "README.md"), "w") as f:
    f.write("side file\n")
np.save(os.path.join(rd, "sub", "nested.npy"), np.zeros(2, np.float32))  # not read: top level only
np.save(os.path.join(rd, ".hidden.npy"), np.zeros(2, np.float32))          # not read: hidden
with open(os.path.join(out, "reader.json"), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)

# ---- parser cases --------------------------------------------------------------------------------------
base = np.arange(600, dtype="<f4").reshape(30, 20)
with open(os.path.join(cs, "ok_numpy.npy"), "wb") as f:
    np.save(f, base)
good = open(os.path.join(cs, "ok_numpy.npy"), "rb").read()
data = base.tobytes()


def npy(header, payload=data, version=(1, 0), raw_len=None):
    """An NPY file with this header text, padded like NumPy (64-byte aligned, '\\n' terminated)."""
    h = header.encode("latin-1")
    pre = 10 if version[0] == 1 else 12
    total = (pre + len(h) + 1 + 63) // 64 * 64
    h = h + b" " * (total - pre - len(h) - 1) + b"\n"
    n = len(h) if raw_len is None else raw_len
    fmt = "<H" if version[0] == 1 else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, n) + h + payload


D = "{'descr': '<f4', 'fortran_order': False, 'shape': (30, 20), }"
cases = {
    # accepted
    "ok_python2_longs": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (30L, 20L), }"),
    "ok_shape_trailing_comma": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (30, 20,), }"),
    "ok_no_trailing_comma": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (30, 20)}"),
    "ok_double_quotes": npy('{"descr": "<f4", "fortran_order": False, "shape": (30, 20)}'),
    "ok_key_order": npy("{'shape': (30, 20), 'fortran_order': False, 'descr': '<f4', }"),
    "ok_one_byte_le": npy("{'descr': '<u1', 'fortran_order': False, 'shape': (2400,), }"),
    "ok_one_byte_be": npy("{'descr': '>i1', 'fortran_order': False, 'shape': (2400,), }"),
    "ok_fortran_1d": npy("{'descr': '<f4', 'fortran_order': True, 'shape': (600,), }"),
    "ok_empty_huge_dim": npy("{'descr': '<f4', 'fortran_order': True, 'shape': (0, 100000000000000000), }", b""),
    "ok_v2": npy(D, version=(2, 0)),
    # refused
    "bad_empty": b"",
    "bad_short": b"\x93NUM",
    "bad_magic": b"\x93NUMPX" + good[6:],
    "bad_prefix_truncated": good[:9],
    "bad_v2_prefix_truncated": npy(D, version=(2, 0))[:11],
    "bad_header_truncated": good[:40],
    "bad_header_past_eof": good[:8] + struct.pack("<H", 60000) + good[10:200],
    "bad_header_too_long": npy(D + " " * 70000, version=(2, 0)),
    "bad_version_4": npy(D, version=(4, 0)),
    "bad_version_1_1": npy(D, version=(1, 1)),
    "bad_data_truncated": good[:-8],
    "bad_data_extra": good + b"\0\0\0\0",
    "bad_big_endian": npy("{'descr': '>f4', 'fortran_order': False, 'shape': (30, 20), }"),
    "bad_complex": npy("{'descr': '<c8', 'fortran_order': False, 'shape': (30, 10), }"),
    "bad_unicode": npy("{'descr': '<U3', 'fortran_order': False, 'shape': (200,), }"),
    "bad_object": npy("{'descr': '|O', 'fortran_order': False, 'shape': (300,), }"),
    "bad_datetime": npy("{'descr': '<M8[D]', 'fortran_order': False, 'shape': (300,), }"),
    "bad_float128": npy("{'descr': '<f16', 'fortran_order': False, 'shape': (150,), }"),
    "bad_no_byte_order": npy("{'descr': 'f4', 'fortran_order': False, 'shape': (30, 20), }"),
    "bad_multibyte_no_order": npy("{'descr': '|f4', 'fortran_order': False, 'shape': (30, 20), }"),
    "bad_structured": npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (600,), }"),
    "bad_dict_key": npy("{'descr': '<f4', 'fortran_order': False, 'shope': (30, 20), }"),
    "bad_missing_shape": npy("{'descr': '<f4', 'fortran_order': False, }"),
    "bad_missing_descr": npy("{'fortran_order': False, 'shape': (30, 20), }"),
    "bad_duplicate_key": npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (30, 20), }"),
    "bad_not_dict": npy("['descr', '<f4']"),
    "bad_unterminated_string": npy("{'descr"),
    "bad_missing_colon": npy("{'descr' '<f4', 'fortran_order': False, 'shape': (30, 20), }"),
    "bad_missing_comma": npy("{'descr': '<f4' 'fortran_order': False, 'shape': (30, 20), }"),
    "bad_unclosed_dict": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (30, 20), "),
    "bad_fortran_value": npy("{'descr': '<f4', 'fortran_order': Yes, 'shape': (30, 20), }"),
    "bad_shape_list": npy("{'descr': '<f4', 'fortran_order': False, 'shape': [30, 20], }"),
    "bad_shape_not_tuple": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (600), }"),
    "bad_shape_negative": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 20), }"),
    "bad_shape_float": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (30.0, 20), }"),
    "bad_shape_leading_zero": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (030, 20), }"),
    "bad_shape_9d": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 600), }"),
    "bad_shape_overflow": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999, 99999999999999999), }"),
    "bad_shape_overflow_with_zero": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 99999999999999999, 99999999999999999), }", b""),
    "bad_shape_19_digits": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1234567890123456789,), }"),
    "bad_shape_huge": npy("{'descr': '<f4', 'fortran_order': False, 'shape': (100000000, 100000), }"),
    "bad_trailing_junk": npy(D + " xyz"),
    "bad_newline_in_key": npy("{'a\nb': 1, 'descr': '<f4', 'fortran_order': False, 'shape': (30, 20), }"),
}
for name, b in cases.items():
    with open(os.path.join(cs, name + ".npy"), "wb") as f:
        f.write(b)
print(len(arrays) + 2, "arrays,", len(cases) + 1, "cases")
