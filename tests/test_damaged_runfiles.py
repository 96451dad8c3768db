"""Damaged run files never crash anything: `report` and the GUI's loaders answer one line naming the file.

The corpus (tests/damaged_corpus.py) runs in one worker process that is restarted after a crash; `make fuzz`
runs a longer one."""
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from engine import schema
from engine.annotations import annotate
from engine.errors import RunFileError
from engine.runfile import read_header, read_run
from tests.damaged_corpus import LEGACY_CRASHERS, make_corpus, run_corpus, write_legacy_copy, write_source


def test_no_damaged_file_crashes_report_or_the_loaders(tmp_path):
    source = write_source(tmp_path / "source.h5")
    legacy = write_legacy_copy(source, tmp_path / "legacy.h5")
    # Every structured damage on a file of today's format; byte damage on both formats, including flips that
    # crash the HDF5 library itself when it reads in the process.
    cases = make_corpus(source, tmp_path / "new", count=300, seed=1)
    cases += make_corpus(legacy, tmp_path / "old", count=40, seed=2, structured=False, flips=LEGACY_CRASHERS)
    # Byte damage on a file with a name, notes and tags too (the user's values, stored as the app stores them).
    annotated = write_source(tmp_path / "annotated.h5")
    annotate(annotated, name="named run", notes="notes\n" * 40, tags=["one", "two", "three"])
    cases += make_corpus(annotated, tmp_path / "annotated", count=30, seed=3, structured=False)
    assert len(cases) >= 360
    outcome = run_corpus([case.path for case in cases])
    for folder in ("new", "old", "annotated"):      # ~200 MB of copies: not left for pytest to keep
        shutil.rmtree(tmp_path / folder)
    assert outcome.crashes == []
    assert outcome.hangs == []
    assert outcome.tracebacks == []
    assert outcome.passed == len(cases)


def test_the_corpus_harness_counts_crashes(tmp_path):
    # Without the reader process, the known flips crash the worker: the harness sees it and carries on.
    legacy = write_legacy_copy(write_source(tmp_path / "source.h5"), tmp_path / "legacy.h5")
    cases = make_corpus(legacy, tmp_path / "old", count=5, structured=False, flips=LEGACY_CRASHERS)
    outcome = run_corpus([case.path for case in cases], in_process=True)
    assert [path for path, _ in outcome.crashes] == [str(case.path) for case in cases[:len(LEGACY_CRASHERS)]]
    assert outcome.passed == len(cases) - len(LEGACY_CRASHERS)


@pytest.fixture
def run_file(tmp_path):
    return write_source(tmp_path / "run.h5")


def _set(path: Path, where: str, key: str, value) -> None:
    with h5py.File(path, "r+") as handle:
        handle[where].attrs[key] = value


@pytest.mark.parametrize("key, value, words", [
    ("format_version", "abc", "format_version = 'abc', expected a whole number"),
    ("format_version", np.array([1, 2]), "format_version = [1, 2], expected a whole number"),
    ("format_version", float("nan"), "format_version = nan, expected a whole number"),
    ("config", 'name = "x"\ndata = 5\n', "config: data = 5, expected a table"),
    ("config", "[[[", "its config is not valid TOML"),
    ("status", "exploded", "status = 'exploded', expected one of running"),
])
def test_damaged_root_attributes_are_one_line(run_file, key, value, words):
    _set(run_file, "/", key, value)
    for reader in (read_header, read_run):
        with pytest.raises(RunFileError) as raised:
            reader(run_file)
        assert str(raised.value) == f"{run_file}: damaged run file ({words})" or words in str(raised.value)
        assert str(raised.value).startswith(str(run_file)) and "\n" not in str(raised.value)


@pytest.mark.parametrize("value, words", [
    (0, "batch_size = 0, expected at least 1"), (-5, "batch_size = -5, expected at least 1"),
    (np.array([8, 16]), "batch_size = [8, 16], expected a whole number"), ("16", "batch_size = '16'"),
])
def test_batch_size_must_be_a_positive_whole_number(run_file, value, words):
    with h5py.File(run_file, "r") as handle:
        trial = f"{schema.TRIALS_GROUP}/{next(iter(handle[schema.TRIALS_GROUP]))}"
    _set(run_file, trial, "batch_size", value)
    with pytest.raises(RunFileError, match="damaged run file") as raised:
        read_run(run_file)
    assert words in str(raised.value)


@pytest.mark.parametrize("damage, words", [
    ("two_d", "expected one dimension"), ("text", "expected numbers"), ("scalar", "expected one dimension"),
    ("huge_shape", "more than the file holds"), ("missing", "epoch/val_accuracy: missing"),
])
def test_damaged_datasets_are_one_line(run_file, damage, words):
    from tests.damaged_corpus import _damage_dataset
    with h5py.File(run_file, "r+") as handle:
        trial = handle[schema.TRIALS_GROUP][next(iter(handle[schema.TRIALS_GROUP]))]
        _damage_dataset(trial[schema.EPOCH_GROUP], "val_accuracy", damage)
    with pytest.raises(RunFileError, match="damaged run file") as raised:
        read_run(run_file)
    assert words in str(raised.value)


def test_a_flipped_byte_that_crashes_hdf5_is_one_line(tmp_path):
    legacy = write_legacy_copy(write_source(tmp_path / "source.h5"), tmp_path / "legacy.h5")
    data = bytearray(legacy.read_bytes())
    offset, xor = LEGACY_CRASHERS[0]
    data[offset] ^= xor
    damaged = tmp_path / "flipped.h5"
    damaged.write_bytes(bytes(data))
    with pytest.raises(RunFileError) as raised:
        read_run(damaged)
    assert str(raised.value) == f"{damaged}: damaged run file (reading it crashed the HDF5 library: SIGSEGV)"
    assert read_run(legacy).header.name == "corpus"    # the reader process was replaced and reads on


def test_files_in_the_oldest_format_still_read(tmp_path):
    source = write_source(tmp_path / "source.h5")
    legacy = read_run(write_legacy_copy(source, tmp_path / "legacy.h5"))
    today = read_run(source)
    assert [t.name for t in legacy.trials] == [t.name for t in today.trials]
    for old, new in zip(legacy.trials, today.trials):
        for key in new.step:
            np.testing.assert_array_equal(old.step[key], new.step[key])


def test_a_run_that_was_not_closed_opens_with_a_note(tmp_path):
    # A writer killed between flushes: the file is complete to its last epoch, and its status says running.
    import subprocess
    import sys

    from tests.conftest import ROOT
    script = ("import os, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + '/tests');"
              "import numpy as np; from engine.runfile import RunWriter; from engine import schema;"
              "w = RunWriter(sys.argv[2], 'name = \"killed\"', {});"
              "w.start_trial('t', {'batch_size': 8, 'seed': 0, 'lr': 0.1});"
              "w.add_epoch('t', {m.name: 1 for m in schema.EPOCH_METRICS}); os._exit(0)")
    path = tmp_path / "killed.h5"
    subprocess.run([sys.executable, "-c", script, str(ROOT), str(path)], check=True, timeout=120)
    header = read_header(path)
    assert header.status == schema.RUNNING and not header.being_written
    assert header.note.startswith("not closed by its writer")
    assert read_run(path).trials[0].epochs_done == 1


@pytest.mark.parametrize("spawn", [False, True], ids=["python -m child", "multiprocessing spawn child"])
def test_both_kinds_of_reader_process_survive_a_crash(tmp_path, spawn):
    # The packaged app and Windows use a multiprocessing spawn child; elsewhere `python -m engine.reader_process`.
    from engine.reader_process import ReaderProcess
    from engine.runfile_reader import read_header_here, read_run_here
    legacy = write_legacy_copy(write_source(tmp_path / "source.h5"), tmp_path / "legacy.h5")
    data = bytearray(legacy.read_bytes())
    offset, xor = LEGACY_CRASHERS[0]
    data[offset] ^= xor
    (tmp_path / "flipped.h5").write_bytes(bytes(data))
    reader = ReaderProcess(spawn=spawn)
    try:
        assert reader.call(read_header_here, legacy).name == "corpus"
        with pytest.raises(RunFileError, match="crashed the HDF5 library: SIGSEGV"):
            reader.call(read_run_here, tmp_path / "flipped.h5")
        assert reader.call(read_header_here, legacy).name == "corpus"
    finally:
        reader.close()


def test_a_read_is_a_hang_by_the_work_it_does_not_by_the_time_it_waits(tmp_path):
    # A busy machine once made a sound read of a live file wait 10 s and be called damaged: the limit counts the
    # reader's CPU time. The spinning read is given 1 s of work; the waiting one waits three times its 0.5 s.
    from engine.reader_process import ReaderProcess
    from tests.damaged_corpus import spin_forever, wait_then_answer
    reader = ReaderProcess(spawn=False)
    try:
        with pytest.raises(RunFileError, match=r"did not finish in 1 s of work"):
            reader.call(spin_forever, tmp_path / "any.h5", timeout_s=1.0)
        assert reader.call(wait_then_answer, tmp_path / "any.h5", timeout_s=0.5) == "answered"
    finally:
        reader.close()


def test_a_script_without_a_main_guard_can_read_run_files(tmp_path):
    # The reader process must not run the caller's script again (multiprocessing's spawn would).
    import subprocess
    import sys

    from tests.conftest import ROOT
    source = write_source(tmp_path / "source.h5")
    script = tmp_path / "script.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nfrom engine.runfile import read_run\n"
                      f"print(read_run({str(source)!r}).header.name)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "corpus"


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="named pipes need a POSIX system")
def test_a_pipe_a_device_or_a_folder_is_one_line_at_once(tmp_path):
    import os
    os.mkfifo(tmp_path / "pipe.h5")              # opening it to read would wait forever for a writer
    os.symlink("/dev/zero", tmp_path / "zeros.h5")
    (tmp_path / "folder.h5").mkdir()
    for name, words in (("pipe.h5", "not a regular file"), ("zeros.h5", "not a regular file"),
                        ("folder.h5", "is a folder")):
        for reader in (read_header, read_run):
            with pytest.raises(RunFileError, match=words):
                reader(tmp_path / name)
