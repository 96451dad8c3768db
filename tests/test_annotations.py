"""A run's name, notes and tags: written into real run files, read back, refused while a sweep writes the file,
kept when the disk has no room, and hostile stored values read as a damaged file with the reason."""
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from engine import schema
from engine.annotations import MAX_TAGS, Annotations, annotate, merge_tags, parse_tags
from engine.cli import main as cli_main
from engine.errors import RunFileError, UserError
from engine.runfile import RunWriter, read_header, read_run
from tests.conftest import ROOT
from tests.damaged_corpus import LEGACY_CRASHERS, write_legacy_copy, write_source


@pytest.fixture
def run_file(tmp_path):
    return write_source(tmp_path / "run.h5")


def test_name_notes_and_tags_are_kept_in_the_file(run_file):
    after = annotate(run_file, name="  Baseline SGD ", notes="first try\nlr from the paper", tags=["base", "sgd"])
    assert after == Annotations("Baseline SGD", "first try\nlr from the paper", ("base", "sgd"))
    header = read_header(run_file)
    assert (header.name, header.given_name, header.notes, header.tags) == \
        ("Baseline SGD", "Baseline SGD", "first try\nlr from the paper", ("base", "sgd"))
    assert read_run(run_file).header.name == "Baseline SGD"
    # Only what is given changes; tags are added and removed without regard to case.
    assert annotate(run_file, add_tags=["SGD", "long"], remove_tags=["BASE"]).tags == ("sgd", "long")
    assert read_header(run_file).notes == "first try\nlr from the paper"
    # Empty values give the config's name back and leave no attribute behind.
    annotate(run_file, name="", notes="", tags=())
    header = read_header(run_file)
    assert (header.name, header.given_name, header.notes, header.tags) == ("corpus", "", "", ())
    with h5py.File(run_file, "r") as handle:
        assert not set(schema.ANNOTATION_ATTRS) & set(handle.attrs)


def test_the_runs_data_is_untouched(run_file):
    before = read_run(run_file)
    annotate(run_file, name="renamed", notes="x" * 5000, tags=[f"tag{n}" for n in range(MAX_TAGS)])
    after = read_run(run_file)
    assert [trial.name for trial in after.trials] == [trial.name for trial in before.trials]
    for old, new in zip(before.trials, after.trials):
        for key in old.step:
            np.testing.assert_array_equal(old.step[key], new.step[key])
        assert old.status == new.status


def test_a_version_1_file_takes_them_too(tmp_path):
    legacy = write_legacy_copy(write_source(tmp_path / "source.h5"), tmp_path / "legacy.h5")
    annotate(legacy, name="old run", tags=["v1"])
    header = read_header(legacy)
    assert (header.name, header.tags) == ("old run", ("v1",))
    assert len(read_run(legacy).trials) == 2


@pytest.mark.parametrize("values, words", [
    ({"name": "two\nlines"}, "one line"), ({"name": "x" * 121}, "longer than 120"),
    ({"tags": ["a,b"]}, "holds a comma"), ({"notes": "x" * 20_001}, "longer than 20000"),
    ({"tags": [f"t{n}" for n in range(MAX_TAGS + 1)]}, f"more than {MAX_TAGS}"),
    ({"notes": "bell \a"}, "control characters"), ({"add_tags": ["x" * 41]}, "longer than 40"),
])
def test_values_that_break_the_rules_are_one_line_and_change_nothing(run_file, values, words):
    annotate(run_file, name="kept", tags=["kept"])
    before = run_file.read_bytes()
    with pytest.raises(UserError, match=words) as raised:
        annotate(run_file, **values)
    assert "\n" not in str(raised.value)
    assert run_file.read_bytes() == before


def test_windows_line_breaks_in_notes_are_kept_as_line_breaks(run_file):
    assert annotate(run_file, notes="one\r\ntwo\rthree").notes == "one\ntwo\nthree"


def test_typed_tags():
    assert parse_tags(" baseline, lr sweep,,Baseline , ") == ("baseline", "lr sweep")
    assert merge_tags(("a", "b"), ("c", "A"), ("b",)) == ("a", "c")


def test_a_run_being_written_is_refused(tmp_path):
    path = tmp_path / "live.h5"
    writer = RunWriter(path, 'name = "live"\n', {})
    try:
        with pytest.raises(RunFileError, match="a sweep is writing this run now") as raised:
            annotate(path, name="too early")
        assert str(raised.value).startswith(str(path)) and "\n" not in str(raised.value)
    finally:
        writer.close(schema.COMPLETED)
    assert read_header(path).given_name == ""
    assert annotate(path, name="now").name == "now"


def test_where_writers_cannot_be_seen_a_run_not_ended_is_refused(run_file, monkeypatch):
    # On Windows there is no flock to see a writer by: a `running` run may be one that a sweep is writing.
    import engine.annotations
    with h5py.File(run_file, "r+") as handle:
        handle.attrs["status"] = schema.RUNNING                      # as a killed writer leaves it
    monkeypatch.setattr(engine.annotations, "_WRITERS_VISIBLE", False)
    with pytest.raises(RunFileError, match="cannot be told from one that was interrupted"):
        engine.annotations._annotate_here(run_file, name="x", notes=None, tags=None, add_tags=(), remove_tags=())
    monkeypatch.undo()
    assert annotate(run_file, name="x").name == "x"                 # here (flock) an interrupted run can be named


def test_a_damaged_file_is_refused_with_its_reason(run_file):
    with h5py.File(run_file, "r+") as handle:
        handle.attrs["status"] = "exploded"
    with pytest.raises(RunFileError, match="damaged run file .status = 'exploded'"):
        annotate(run_file, name="x")


def test_a_file_that_crashes_hdf5_is_refused_in_one_line_and_the_caller_goes_on(tmp_path):
    legacy = write_legacy_copy(write_source(tmp_path / "source.h5"), tmp_path / "legacy.h5")
    data = bytearray(legacy.read_bytes())
    offset, xor = LEGACY_CRASHERS[0]
    data[offset] ^= xor
    flipped = tmp_path / "flipped.h5"
    flipped.write_bytes(bytes(data))
    with pytest.raises(RunFileError, match="crashed the HDF5 library") as raised:
        annotate(flipped, name="x")
    assert "\n" not in str(raised.value)
    assert annotate(legacy, name="still works").name == "still works"


# A file size limit in a child process (SIGXFSZ ignored, so writes get EFBIG); the reader process it starts for
# the write inherits the limit. The file may not grow at all: the reservation must fail before HDF5 writes.
NO_ROOM = r"""
import json, os, resource, signal, sys
sys.path.insert(0, sys.argv[1])
from engine.annotations import annotate
from engine.errors import UserError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
size = os.path.getsize(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    annotate(sys.argv[2], name="new name", notes="n" * 20000, tags=["new"])
    print(json.dumps({"error": ""}))
except UserError as error:
    print(json.dumps({"error": str(error)}))
"""


def test_a_full_disk_leaves_the_old_values(run_file):
    annotate(run_file, name="old name", notes="old notes", tags=["old"])
    done = subprocess.run([sys.executable, "-c", NO_ROOM, str(ROOT), str(run_file)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error.startswith(f"file size limit reached writing {run_file}") and "nothing in it was changed" in error
    header = read_header(run_file)
    assert (header.given_name, header.notes, header.tags) == ("old name", "old notes", ("old",))
    assert len(read_run(run_file).trials) == 2


@pytest.mark.parametrize("key, value, words", [
    (schema.TAGS_ATTR, 7, "tags = 7, expected a list of texts"),
    (schema.TAGS_ATTR, "solo", "tags = 'solo', expected a list of texts"),
    (schema.TAGS_ATTR, np.ones((2, 2)), "expected a list of texts"),
    (schema.TAGS_ATTR, np.array([b"ok", b"\xff\xfe"], dtype=h5py.string_dtype("ascii")), "not UTF-8"),
    (schema.TAGS_ATTR, ["a,b"], "tags: tag 'a,b': holds a comma"),
    (schema.TAGS_ATTR, ["same", "Same"], "the same tag twice"),
    (schema.TAGS_ATTR, [f"t{n}" for n in range(500)], "500 tags, more than 32"),
    (schema.DISPLAY_NAME_ATTR, 5, "display_name = 5, expected text"),
    (schema.DISPLAY_NAME_ATTR, "evil\x1b[2Jname", "one line of text"),
    (schema.DISPLAY_NAME_ATTR, np.bytes_(b"\xc3\x28"), "display_name: text that is not UTF-8"),
    (schema.NOTES_ATTR, "x" * 100_000, "notes: notes of 100000 characters"),
    (schema.NOTES_ATTR, np.array(["a", "b"], dtype=h5py.string_dtype()), "notes = ['a', 'b'], expected text"),
])
def test_hostile_stored_values_read_as_a_damaged_file_with_the_reason(run_file, key, value, words):
    with h5py.File(run_file, "r+") as handle:
        handle.attrs[key] = value
    for reader in (read_header, read_run):
        with pytest.raises(RunFileError) as raised:
            reader(run_file)
        text = str(raised.value)
        assert text.startswith(f"{run_file}: damaged run file (") and words in text and "\n" not in text


def test_annotate_and_diff_on_the_command_line(run_file, tmp_path, capsys):
    assert cli_main(["annotate", str(run_file), "--name", "Baseline", "--tag", "base", "--tag", "sgd",
                     "--notes", "first\nsecond"]) == 0
    out = capsys.readouterr().out
    assert out == "name: Baseline\ntags: base, sgd\nnotes:\n  first\n  second\n"
    assert cli_main(["annotate", str(run_file), "--untag", "SGD"]) == 0
    assert "tags: base\n" in capsys.readouterr().out
    assert cli_main(["annotate", str(run_file), "--clear-tags", "--tag", "fresh"]) == 0
    assert read_header(run_file).tags == ("fresh",)
    assert cli_main(["annotate", str(run_file), "--name", "bad\tname"]) == 2
    assert capsys.readouterr().err == "error: A name must be one line of text (no line breaks or control characters)\n"

    other = tmp_path / "other.h5"
    with h5py.File(write_source(other), "r+") as handle:
        handle.attrs["config"] = handle.attrs["config"].replace("lr = 0.05", "lr = 0.1")
    assert cli_main(["diff", str(run_file), str(other)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["key", "Baseline", "(run.h5)", "corpus", "(other.h5)"]
    assert [line.split() for line in lines[1:]] == [["train.lr", "0.05", "0.1"]]
    assert captured.err.startswith("1 of 7 config keys differ between 2 runs")
    assert cli_main(["diff", str(run_file), str(other), "--all"]) == 0
    assert "name (same)" in capsys.readouterr().out
    assert cli_main(["diff", str(run_file)]) == 2
    assert "two or more run files" in capsys.readouterr().err


def test_runs_lists_a_folder_as_the_runs_tab_does(tmp_path, capsys):
    write_source(tmp_path / "a.h5")
    annotate(write_source(tmp_path / "b.h5"), name="Tagged", tags=["Keep"])
    (tmp_path / "broken.h5").write_text("not HDF5")
    assert cli_main(["runs", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split()[:2] == ["name", "tags"] and len(lines) == 4
    assert lines[1].startswith("corpus ") and lines[1].endswith("a.h5")
    assert "finished · 1 of 2 trials completed, 1 diverged" in lines[1]
    assert lines[2].split()[:2] == ["Tagged", "Keep"] and lines[2].endswith("b.h5")
    assert "not a run file: not a Batch Size Lab run file (not an HDF5 file)" in lines[3]
    assert captured.err == f"2 runs, 1 unreadable files in {tmp_path}\n"
    assert cli_main(["runs", str(tmp_path), "--filter", "keep MNIST1D"]) == 0
    captured = capsys.readouterr()
    assert [line.split()[-1] for line in captured.out.splitlines()[1:]] == ["b.h5"]
    assert captured.err.endswith("; 1 shown by the filter\n")
    assert cli_main(["runs", str(tmp_path / "missing")]) == 2
    assert "missing: cannot be listed" in capsys.readouterr().err
