"""Peak memory of one batch, and the fresh process `bench profile` measures it in on a CPU.

On CUDA the figure is ``torch.cuda.max_memory_allocated``. On a CPU a process's peak resident set (Linux's
VmHWM) is what a reader can compare with a machine's memory, but in the process that has just timed the
model it says little: the warm-up calls leave freed blocks that the measured batch reuses, and pytest or a
notebook adds its own heap. So `fresh_process_peak` runs one batch in a new Python interpreter
(``python -m bench.analyses.process_memory``, a subprocess, not a multiprocessing child: nothing of the
calling process is inherited or re-imported) that imports only what ``bench run``'s scorer needs.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import subprocess
import sys

import torch

from bench.engine.inference import prepare_scorer
from bench.errors import BenchError
from detectors import get_detector


class PeakMemory:
    """Peak memory of the code run between ``start()`` and ``stop()``, in MiB.

    CUDA: ``torch.cuda.max_memory_allocated`` (weights, input and activations).
    CPU: growth of the process's resident-set high-water mark over the resident set at ``start()``
    (activations and workspace; the weights and input are already resident), and ``baseline_mb``, the
    resident set at ``start()``. Linux lets a process reset its high-water mark (``/proc/self/clear_refs``);
    freed heap memory is handed back to the system first (``malloc_trim``), so memory left over from earlier
    calls does not hide the peak. Where the mark cannot be reset, ``getrusage``'s lifetime maximum is used
    and the growth is only a lower bound.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.method = ""
        self._baseline_kb = 0

    def start(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "torch.cuda.max_memory_allocated (weights, input and activations)"
            return
        trim_heap()
        if reset_rss_high_water_mark():
            self._baseline_kb = proc_status_kb("VmRSS")
            self.method = "growth of the process RSS high-water mark (VmHWM, reset before the batch runs)"
        else:
            self._baseline_kb = ru_maxrss_kb()
            self.method = "growth of getrusage ru_maxrss (lifetime maximum: a lower bound)"

    @property
    def baseline_mb(self) -> float:
        """The resident set at ``start()`` (CPU; the lifetime maximum where the mark cannot be reset), MiB."""
        return self._baseline_kb / 1024.0

    def stop(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        peak_kb = proc_status_kb("VmHWM") if "VmHWM" in self.method else ru_maxrss_kb()
        return max(0, peak_kb - self._baseline_kb) / 1024.0


def trim_heap() -> None:
    # glibc keeps freed blocks mapped; without this earlier calls' activations count in the baseline
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass  # not glibc: the baseline may be higher, the figure then lower


def reset_rss_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # 5 = reset the peak resident set size (Linux >= 4.0)
        return True
    except OSError:
        return False


def proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def ru_maxrss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def one_batch_peak(name: str, batch_size: int, input_size: int, channels_last: bool | None) -> dict:
    """In this process: build the detector's fast CPU scorer, make a batch of random uint8 images, reset the
    high-water mark and score the batch once. {"growth_mb", "resident_mb", "method"} (see PeakMemory)."""
    detector = get_detector(name)
    scorer = prepare_scorer(detector.build(), detector.preprocessing, torch.device("cpu"), channels_last=channels_last)
    pixels = torch.randint(0, 256, (batch_size, 3, input_size, input_size), dtype=torch.uint8)
    meter = PeakMemory(torch.device("cpu"))
    meter.start()
    with torch.inference_mode():
        scorer(pixels)
    growth = meter.stop()
    return {"growth_mb": growth, "resident_mb": meter.baseline_mb, "method": meter.method}


def fresh_process_peak(name: str, batch_size: int, input_size: int, channels_last: bool | None) -> dict:
    """`one_batch_peak` in a new Python interpreter with this process's module path and thread count. The
    figure used to be the growth alone, measured in the profiling process after warm-up calls whose freed
    memory the batch reused, under the label "peak MB": 54 MB for a ViT-L whose weights alone take 1.2 GB."""
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
                       OMP_NUM_THREADS=str(torch.get_num_threads()))
    arguments = json.dumps([name, batch_size, input_size, channels_last])
    done = subprocess.run([sys.executable, "-m", __name__, arguments], env=environment, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise BenchError(f"measuring the peak memory of {name} in a fresh Python process failed "
                         f"(exit {done.returncode}):\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(one_batch_peak(*json.loads(sys.argv[1]))))
