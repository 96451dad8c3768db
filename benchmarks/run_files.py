"""Figures for docs/run-files.md: what reading in the reader process costs against reading in the process,
what checksums and the reserved room cost the writer, and how often a read of a file being written has to be
tried again. Ratios are against the same work done the plain way in this process.

    .venv/bin/python benchmarks/run_files.py
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import reader_process, schema  # noqa: E402
from engine.errors import RunFileError  # noqa: E402
from engine.runfile import RunWriter, read_header, read_run  # noqa: E402
from engine.runfile_reader import read_header_here, read_run_here  # noqa: E402


def write(path: Path, trials: int, epochs: int, steps: int, plain: bool = False) -> float:
    """A run file like a sweep's; plain=True writes it the way format version 1 files were first written (oldest
    HDF5 format, no checksums, no reserved room). Returns the seconds spent writing."""
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    if plain:
        handle = h5py.File(path, "w")
        handle.attrs.update({"format": schema.FORMAT, "format_version": 1, "config": 'name = "bench"\n',
                             "status": schema.COMPLETED})
    else:
        writer = RunWriter(path, 'name = "bench"\n', {"device_name": "bench"})
    for trial in range(trials):
        name = schema.trial_name(8 * (trial + 1), 0)
        if plain:
            group = handle.create_group(f"trials/{name}")
            group.attrs.update({"batch_size": 8 * (trial + 1), "seed": 0, "lr": 0.1})
            for sub, metrics, chunk in ((schema.EPOCH_GROUP, schema.EPOCH_METRICS, 64),
                                        (schema.STEP_GROUP, schema.STEP_METRICS, 4096)):
                for metric in metrics:
                    group.create_dataset(f"{sub}/{metric.name}", shape=(0,), maxshape=(None,), dtype=metric.dtype,
                                         chunks=(chunk,))
        else:
            writer.start_trial(name, {"batch_size": 8 * (trial + 1), "seed": 0, "lr": 0.1})
        for epoch in range(epochs):
            rows = np.arange(steps) + epoch * steps
            columns = {"step": rows, "samples": rows * 8, "wall_time_s": rows * 0.01,
                       "loss": np.ones(steps, np.float32), "lr": np.ones(steps, np.float32),
                       "grad_norm": np.ones(steps, np.float32)}
            epoch_row = {m.name: np.asarray([epoch]) for m in schema.EPOCH_METRICS}
            if plain:
                for sub, values in ((schema.STEP_GROUP, columns), (schema.EPOCH_GROUP, epoch_row)):
                    for key, column in values.items():
                        dataset = group[f"{sub}/{key}"]
                        start = dataset.shape[0]
                        dataset.resize((start + len(column),))
                        dataset[start:] = column
                handle.flush()
            else:
                writer.add_steps(name, columns)
                writer.add_epoch(name, {key: float(value[0]) for key, value in epoch_row.items()})
        if not plain:
            writer.end_trial(name, schema.COMPLETED)
    handle.close() if plain else writer.close(schema.COMPLETED)
    return time.perf_counter() - started


def best_of(function, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def live_reads(folder: Path, retry: bool, reads: int = 300) -> tuple[int, int]:
    """A writer process adds epochs as fast as it can; the file is read meanwhile, once per read (retry=False)
    or as engine.runfile.read_run does, trying again while the writer holds it. Returns (failed, reads)."""
    path = folder / "live.h5"
    path.unlink(missing_ok=True)
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'benchmarks')!r});"
              f"from run_files import write; from pathlib import Path; write(Path({str(path)!r}), 40, 200, 50)")
    writer = subprocess.Popen([sys.executable, "-c", script])
    while not path.exists() or path.stat().st_size == 0:
        time.sleep(0.01)
    failed = done = 0
    while writer.poll() is None and done < reads:
        try:
            read_run(path) if retry else reader_process.call(read_run_here, path)
        except RunFileError:
            failed += 1
        done += 1
    writer.kill()
    writer.wait()
    return failed, done


def main() -> None:
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        shapes = {"small (2 trials x 3 epochs x 40 steps)": (2, 3, 40),
                  "demo-sized (4 trials x 15 epochs x 500 steps)": (4, 15, 500),
                  "large (20 trials x 50 epochs x 2000 steps)": (20, 50, 2000)}
        started = time.perf_counter()
        try:
            reader_process.call(read_header_here, folder / "none.h5")
        except RunFileError:
            pass
        print(f"reader process start (spawn, import h5py and numpy): {time.perf_counter() - started:.3f} s")
        for label, (trials, epochs, steps) in shapes.items():
            plain_s = min(write(folder / f"plain{i}.h5", trials, epochs, steps, plain=True) for i in range(3))
            new_s = min(write(folder / f"new{i}.h5", trials, epochs, steps) for i in range(3))
            path = folder / "new0.h5"
            plain_size, new_size = (folder / "plain0.h5").stat().st_size, path.stat().st_size
            print(f"\n{label}: {new_size / 1e6:.2f} MB (plain format {plain_size / 1e6:.2f} MB)")
            print(f"  write: {new_s * 1e3:.1f} ms with checksums and reserved room, {plain_s * 1e3:.1f} ms plain "
                  f"(ratio {new_s / plain_s:.2f})")
            for name, here, isolated in (("read_header", read_header_here, read_header),
                                         ("read_run", read_run_here, read_run)):
                in_process = best_of(lambda: here(path))
                via_child = best_of(lambda: isolated(path))
                print(f"  {name}: {via_child * 1e3:.1f} ms in the reader process, {in_process * 1e3:.1f} ms in "
                      f"this process (ratio {via_child / in_process:.2f})")
        for retry in (False, True):
            failures = [live_reads(folder, retry) for _ in range(3)]
            print(f"\nreads of a file while another process adds epochs as fast as it can "
                  f"({'read_run, with its retries' if retry else 'one try each'}): "
                  + ", ".join(f"{failed} of {done} failed" for failed, done in failures)
                  + f"; median {statistics.median(f / d for f, d in failures) * 100:.1f}%")


if __name__ == "__main__":
    main()
