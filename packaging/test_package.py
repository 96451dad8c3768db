#!/usr/bin/env python3
"""Smoke test of the packaged app, run from a clean environment: `make package-test` calls it after the build.

Run it with the system's python3 (standard library only), never the project's .venv, e.g.

    python3 packaging/test_package.py [dist/BatchSizeLab/BatchSizeLab]

Every command runs as `env -i PATH=/usr/bin:/bin HOME=<empty temporary folder> ...` (plus QT_QPA_PLATFORM=offscreen
for the GUI), so nothing from the developer's environment (.venv, PYTHONPATH, caches, settings) can help it:
  1. --version prints "Batch Size Lab <version>" (the version in engine/__init__.py)
  2. `run demo --out DIR` trains the bundled demo preset headless, generating MNIST-1D into the empty cache, and
     writes one run file; the bundled `report` reads it back (exit 0, one completed row per batch size) and writes
     a CSV and a PNG figure (matplotlib Agg)
  3. every other bundled preset trains to the end headless (MLP, CNN, GRU; MNIST-1D, synthetic and sequence data)
  4. an invalid config is refused with exit 2 and a one-line reason, no traceback
  5. the GUI, offscreen, shows its main window and exits cleanly (`--startup-check`)
  6. multiprocessing: a child started by the "spawn" method (the default on Windows and macOS) with the bundled
     executable runs its target instead of opening the app (main.py calls freeze_support first)
No run may print a Python warning: the bundle leaves out most of torch's .py sources, and a module that wanted
its own source would say so with a warning (see pyinstaller.spec).
Prints one PASS/FAIL line per check and exits 1 if any failed.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# On Windows the console executable: BatchSizeLab.exe is windowed and has no stdout to read.
DEFAULT_EXE = ROOT / "dist" / "BatchSizeLab" / ("BatchSizeLabCLI.exe" if os.name == "nt" else "BatchSizeLab")

results: list[tuple[str, bool]] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    results.append((name, ok))
    print(f"{'PASS' if ok else 'FAIL'}: {name}" + (f" — {detail}" if detail else ""), flush=True)
    return ok


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    if os.name == "nt":   # the Windows equivalent: only the system folders, and a new empty profile
        system_root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        env = {"SYSTEMROOT": system_root, "PATH": rf"{system_root}\System32;{system_root}", "HOME": str(home),
               "USERPROFILE": str(home), "APPDATA": str(home / "AppData" / "Roaming"),
               "LOCALAPPDATA": str(home / "AppData" / "Local"), "TEMP": str(home), "TMP": str(home)}
    env.update(extra)
    return env


def run(exe: Path, args: list[str], env: dict[str, str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    shown = " ".join(f"{k}={v}" for k, v in env.items())
    print(f"  $ env -i {shown} {exe} {' '.join(args)}", flush=True)
    start = time.monotonic()
    try:
        done = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=env["HOME"])
    except subprocess.TimeoutExpired as error:
        done = subprocess.CompletedProcess(error.cmd, -9, _text(error.stdout), _text(error.stderr) + "\n[timed out]")
    return done, time.monotonic() - start


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def tail(text: str, lines: int = 15) -> str:
    return "\n".join("      | " + line for line in text.strip().splitlines()[-lines:])


def python_warnings(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if re.search(r"\b\w*Warning: ", line)]


def run_preset(exe: Path, preset: str, out: Path, env: dict[str, str]) -> tuple[Path | None, str]:
    """Run a bundled preset headless; the run file it wrote (None if it failed) and what to say about it."""
    done, seconds = run(exe, ["run", preset, "--out", str(out)], env, timeout=900)
    lines = done.stdout.strip().splitlines()
    run_file = Path(lines[-1]) if lines else None
    ok = (done.returncode == 0 and run_file is not None and run_file.suffix == ".h5" and run_file.is_file()
          and run_file.parent == out and run_file.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n")
    warned = python_warnings(done.stderr)
    detail = (f"exit {done.returncode}, {seconds:.1f} s, last line {lines[-1] if lines else '(none)'!r}"
              + ("" if ok else "\n" + tail(done.stderr)) + (f", warnings: {warned[:3]}" if warned else ""))
    return (run_file if ok and not warned else None), detail


def expected_version() -> str:
    match = re.search(r'__version__\s*=\s*"([^"]+)"', (ROOT / "engine" / "__init__.py").read_text())
    return match.group(1) if match else ""


def presets() -> list[str]:
    return sorted(path.stem for path in (ROOT / "resources" / "presets").glob("*.toml"))


def demo_batch_sizes() -> list[int]:
    text = (ROOT / "resources" / "presets" / "demo.toml").read_text()
    match = re.search(r"^batch_sizes\s*=\s*\[([^\]]*)\]", text, re.MULTILINE)
    return [int(value) for value in re.findall(r"\d+", match.group(1))] if match else []


def spawn_child(exe: str) -> int:
    """Start a "spawn" child of multiprocessing with the bundled executable, as the frozen app's own children are
    started, and return its exit code: 7 if it ran its target, os._exit(7). Runs in a process of its own (see main):
    it changes multiprocessing's settings for the whole process."""
    import multiprocessing
    import multiprocessing.resource_tracker
    import multiprocessing.spawn

    if os.name != "nt":   # Windows has no resource tracker
        # The tracker stays a child of this Python: only the worker is the frozen app under test.
        multiprocessing.resource_tracker.ensure_running()
    # The command line multiprocessing builds when the parent itself is frozen (spawn.get_command_line).
    multiprocessing.spawn.get_command_line = lambda **fds: [exe, "--multiprocessing-fork",
                                                            *(f"{key}={value}" for key, value in fds.items())]
    context = multiprocessing.get_context("spawn")
    context.set_executable(exe)
    child = context.Process(target=os._exit, args=(7,))
    child.start()
    child.join(120)
    if child.exitcode is None:
        child.kill()
    return child.exitcode if child.exitcode is not None else -9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exe", nargs="?", default=str(DEFAULT_EXE), help="the packaged executable")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder for inspection")
    parser.add_argument("--spawn-child", action="store_true", help=argparse.SUPPRESS)   # check 6, in its own process
    args = parser.parse_args()
    if args.spawn_child:
        return spawn_child(str(Path(args.exe).resolve()))
    exe = Path(args.exe).resolve()
    if not check("the executable exists", exe.is_file() and os.access(exe, os.X_OK), str(exe)):
        return 1

    tmp = Path(tempfile.mkdtemp(prefix="bsl-package-test-"))
    try:
        home, out = tmp / "home", tmp / "runs"
        home.mkdir()
        env = clean_env(home)

        # 1. --version
        done, seconds = run(exe, ["--version"], env, timeout=120)
        want = f"Batch Size Lab {expected_version()}"
        check("--version", done.returncode == 0 and done.stdout.strip() == want,
              f"printed {done.stdout.strip()!r} (want {want!r}), exit {done.returncode}, {seconds:.1f} s"
              + ("" if done.returncode == 0 else "\n" + tail(done.stderr)))

        # 2. headless run of the bundled demo preset, MNIST-1D generated into the empty cache
        run_file, detail = run_preset(exe, "demo", out, env)
        ok = check("run demo writes a run file, no warnings", run_file is not None, detail)
        cached = sorted(p.name for p in home.rglob("mnist1d_*.npz"))
        check("MNIST-1D generated by the bundled generator into the empty cache", bool(cached),
              ", ".join(cached) or "no mnist1d_*.npz under HOME")

        if ok:
            csv_path, png_path = tmp / "report.csv", tmp / "report.png"
            done, seconds = run(exe, ["report", str(run_file), "--csv", str(csv_path), "--png", str(png_path)],
                                env, timeout=300)
            sizes = demo_batch_sizes()
            rows = [line.split() for line in done.stdout.splitlines() if re.match(r"^\s*\d+\s+\d+\s", line)]
            completed = sorted(int(row[0]) for row in rows if "completed" in row)
            check("report lists one completed row per batch size", done.returncode == 0 and completed == sorted(sizes),
                  f"exit {done.returncode}, rows for batch sizes {completed} (want {sorted(sizes)})"
                  + ("" if done.returncode == 0 else "\n" + tail(done.stderr)))
            csv_ok = csv_path.is_file() and len(csv_path.read_text().strip().splitlines()) == len(sizes) + 1
            png_ok = png_path.is_file() and png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            check("report --csv --png writes both files (matplotlib Agg)", csv_ok and png_ok,
                  f"csv {'ok' if csv_ok else 'missing/wrong'}, png {'ok' if png_ok else 'missing/wrong'}")
        else:
            check("report lists one completed row per batch size", False, "skipped: no run file")

        # 3. the other presets
        for preset in presets():
            if preset != "demo":
                run_file, detail = run_preset(exe, preset, out, env)
                check(f"run {preset}, no warnings", run_file is not None, detail)

        # 4. a user error is one line and exit 2
        done, _ = run(exe, ["run", str(tmp / "no-such-config.toml"), "--out", str(out)], env, timeout=120)
        check("invalid config: exit 2, one line, no traceback",
              done.returncode == 2 and "Traceback" not in done.stderr and "error" in done.stderr
              and not python_warnings(done.stderr),
              f"exit {done.returncode}: {done.stderr.strip()[:200]!r}")

        # 5. the GUI, offscreen: main window shown, clean exit
        gui_env = clean_env(home, QT_QPA_PLATFORM="offscreen")
        done, seconds = run(exe, ["--startup-check"], gui_env, timeout=120)
        shown = re.search(r"window shown after ([0-9.]+) s", done.stdout)
        bad = [marker for marker in ("Traceback", "QThread: Destroyed", "Segmentation fault", "Aborted")
               if marker in done.stderr] + python_warnings(done.stderr)
        check("GUI offscreen: main window shown and clean exit", done.returncode == 0 and shown is not None and not bad,
              f"exit {done.returncode}, {seconds:.1f} s wall, "
              + (f"window shown after {shown.group(1)} s" if shown else "no 'window shown after' line")
              + (f", stderr has {bad}" if bad else "")
              + ("" if done.returncode == 0 and shown else "\n" + tail(done.stdout + "\n" + done.stderr)))

        # 6. multiprocessing in the frozen app
        print(f"  $ {sys.executable} {Path(__file__).name} --spawn-child {exe}", flush=True)
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--spawn-child", str(exe)],
                              env=clean_env(home), capture_output=True, text=True, timeout=300, cwd=home)
        check("multiprocessing: a spawned child of the bundle runs its target (freeze support)", done.returncode == 7,
              f"child exit code {done.returncode} (want 7)" + ("" if done.returncode == 7 else "\n" + tail(done.stderr)))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    failed = [name for name, ok in results if not ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
