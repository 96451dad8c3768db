#!/usr/bin/env python3
"""Cold start time to a visible main window, measured N times; prints every run and the median.

    python3 packaging/startup_time.py -n 7 -- .venv/bin/python main.py --startup-check
    python3 packaging/startup_time.py -n 7 -- dist/BatchSizeLab/BatchSizeLab --startup-check
    python3 packaging/startup_time.py -n 7 --x11 -- dist/BatchSizeLab/BatchSizeLab      # needs DISPLAY (Xvfb)

Each run starts the command with a fresh empty HOME (no settings, no caches of ours) and measures the seconds
from spawning the process until
  - default: its "window shown after X s" line arrives on stdout (under QT_QPA_PLATFORM=offscreen); the X the
    app reports itself is printed too;
  - --x11: a window titled "Batch Size Lab <version>" is mapped and viewable on the X display in DISPLAY (polled
    with xdotool every 30 ms); the app is then terminated. This needs no --startup-check option.
--evict DIR... drops the files under DIR from the page cache before each run (posix_fadvise DONTNEED, only
those files), to approximate the first start after installation; without it the file cache is warm after run 1.
Standard library only: run it with any python3.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

LINE = re.compile(r"window shown after ([0-9.]+) s")
TITLE = "^Batch Size Lab [0-9][0-9.]*$"


def evict(folders: list[str]) -> None:
    for folder in folders:
        for directory, _, files in os.walk(folder):
            for name in files:
                try:
                    handle = os.open(os.path.join(directory, name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(handle, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(handle)


def once_stdout(command: list[str], env: dict[str, str], timeout: float) -> tuple[float, float | None]:
    env = dict(env, QT_QPA_PLATFORM="offscreen")
    start = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
    wall = self_reported = None
    for line in process.stdout:
        match = LINE.search(line)
        if match:
            wall, self_reported = time.monotonic() - start, float(match.group(1))
            break
    try:
        _, errors = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, errors = process.communicate()
    if wall is None:
        raise SystemExit(f"no 'window shown after' line from {' '.join(command)} (exit {process.returncode}):\n"
                         + errors[-3000:])
    return wall, self_reported


def once_x11(command: list[str], env: dict[str, str], timeout: float) -> tuple[float, None]:
    if not env.get("DISPLAY") or not shutil.which("xdotool"):
        raise SystemExit("--x11 needs DISPLAY (e.g. Xvfb :99 & DISPLAY=:99) and xdotool")
    env = dict(env)
    env.pop("QT_QPA_PLATFORM", None)
    start = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL)
    wall = None
    try:
        while time.monotonic() - start < timeout and process.poll() is None:
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", TITLE],
                                   capture_output=True, text=True, env={"DISPLAY": env["DISPLAY"]}).stdout
            if found.strip():
                wall = time.monotonic() - start
                break
            time.sleep(0.03)
    finally:
        process.terminate()
        try:
            _, errors = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, errors = process.communicate()
    if wall is None:
        raise SystemExit(f"no visible window from {' '.join(command)} (exit {process.returncode}):\n" + errors[-3000:])
    return wall, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="number of runs (default 5)")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--x11", action="store_true", help="wait for the mapped window on DISPLAY instead")
    parser.add_argument("--evict", nargs="*", default=[], metavar="DIR", help="drop these files from the page cache")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{' '.join(command)}  ({'x11' if args.x11 else 'offscreen'}{', evicted' if args.evict else ''}; "
          f"load average before: {load:.2f})")
    walls, selfs = [], []
    for number in range(1, args.n + 1):
        if args.evict:
            evict(args.evict)
        home = tempfile.mkdtemp(prefix="bsl-startup-")
        env = dict(os.environ, HOME=home)
        for key in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
            env.pop(key, None)
        try:
            wall, self_reported = (once_x11 if args.x11 else once_stdout)(command, env, args.timeout)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        walls.append(wall)
        if self_reported is not None:
            selfs.append(self_reported)
        print(f"  run {number}: {wall:.3f} s" + (f" (self-reported {self_reported:.3f} s)" if self_reported else ""),
              flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"  median of {args.n}: {statistics.median(walls):.3f} s  (min {min(walls):.3f}, max {max(walls):.3f})"
          + (f", self-reported median {statistics.median(selfs):.3f} s" if selfs else "")
          + f"; load average after: {load:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
