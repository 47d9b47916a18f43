"""Shared helpers of the benchmark scripts."""
import os
import shutil
import subprocess
import sys
import time


def timed_cpu(cmd, **kw):
    """(wall seconds, peak RSS bytes, CPU seconds user + system) of one child process run to completion;
    exits on failure."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, **kw)
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("failed (%d): %s" % (os.waitstatus_to_exitcode(status), " ".join(cmd)))
    return time.monotonic() - t0, ru.ru_maxrss * 1024, ru.ru_utime + ru.ru_stime


def timed(cmd, **kw):
    """(wall seconds, peak RSS bytes) of one child process run to completion; exits on failure."""
    return timed_cpu(cmd, **kw)[:2]


def clean_output(out):
    """Removes a benchmark's output directory and flushes the page cache's dirty pages, so every run starts
    from the same disk state."""
    shutil.rmtree(out, ignore_errors=True)
    os.sync()


def timed_cat(files, out):
    """The `cat` baseline: (wall seconds, peak RSS) of cat-ing `files` into out/copy, from a clean `out`."""
    clean_output(out)
    os.makedirs(out)
    with open(os.path.join(out, "copy"), "wb") as f:
        return timed(["cat", *files], stdout=f)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINYLLAMA = os.path.join(ROOT, "plugins", "model-llama", "configs", "tinyllama-1.1b.json")


def ensure_source(ckhost, data_dir, config=TINYLLAMA):
    """<data_dir>/hf-src: a synthesised HF checkpoint of `config` (one safetensors file), made once."""
    os.makedirs(data_dir, exist_ok=True)
    src = os.path.join(data_dir, "hf-src")
    if not os.path.exists(os.path.join(src, "config.json")):
        print("synthesising", src, "...", flush=True)
        subprocess.run([ckhost, "synth", "--model", "llama", "--config", config, src, "--force",
                        "--progress", "none", "--max-shard-size", "10GB"], check=True)
    return src
