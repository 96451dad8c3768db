"""The command line: `run`, `report`, `find-max-batch`, `annotate`, `diff`, `runs`. A thin client of the same
engine calls the GUI uses.

Exit codes: 0 success (also `run --resume` of a run that is already complete: it says so); 2 invalid config,
input file or run file (one line per problem, no traceback); 3 the run file could not be written (a full disk,
a file size limit, an I/O error: one line naming the file, which keeps every epoch finished before it); 130
interrupted with Ctrl-C (the run file keeps every finished epoch, and `run --resume` goes on from there).
"""
from __future__ import annotations

import argparse
import csv
import math
import signal
import sys
import threading
from pathlib import Path

from engine import APP_NAME, __version__, schema
from engine.errors import ConfigError, RunWriteError, UserError

EXIT_OK, EXIT_USER_ERROR, EXIT_WRITE_ERROR, EXIT_INTERRUPTED = 0, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad arguments already; keep its message to one line plus usage."""

    def error(self, message: str) -> None:
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="batch-size-lab", description=f"{APP_NAME}: measure what batch size does to your "
                     "model on your hardware. Without a command, the desktop app opens.")
    parser.add_argument("--version", action="version", version=f"{APP_NAME} {__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    run = commands.add_parser("run", help="train every trial of an experiment config and write one run file")
    run.add_argument("config", nargs="?",
                     help="experiment config (TOML), or the name of a bundled preset such as 'demo'")
    run.add_argument("--out", help="folder for the run file (created if missing)")
    run.add_argument("--resume", metavar="RUN.h5", help="instead of a config and --out: go on with the interrupted "
                     "or stopped sweep of this run file, in that file, with the config stored in it")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), help="overrides sweep.device of the config "
                     "(with --resume: the device the run was trained on)")
    run.add_argument("--threads", type=_thread_count, metavar="N", help="train with exactly N CPU threads (default: "
                     "before each trial, as many as there are cores free of other processes)")
    run.add_argument("--storage", metavar="JOURNAL|URL", help="random and bayesian searches: share one study with "
                     "other processes or machines through this journal file (created if missing) or database URL "
                     "(sqlite:///study.db); each writes its own run file, and 'report' merges them")
    run.add_argument("--ray", metavar="ADDRESS|auto|local", help="train each trial as a task on this Ray cluster "
                     "(HOST:PORT of its head node; auto: RAY_ADDRESS or one started here with 'ray start --head'; "
                     "local: a new one on this machine for this run); this process writes the run file. Needs "
                     "pip install -r requirements-ray.txt")
    report = commands.add_parser("report", help="one row per trial of a run file; optional CSV and figure")
    report.add_argument("run_file", nargs="+", help="a run file (.h5) written by 'run' or the app; several files of "
                        "one shared search (run --storage) are merged into one report")
    report.add_argument("--csv", help="also write the table as CSV to this path")
    report.add_argument("--png", help="also write a summary figure (accuracy and throughput vs batch size), and "
                        "beside it NAME-findings.png: each finding's evidence plot")
    report.add_argument("--target", type=float, help="validation accuracy target (a fraction, e.g. 0.85) for "
                        "steps/time-to-target and the recommendation; default: 90%% of the best trial's")
    report.add_argument("--json", metavar="OUT.json", help="also write the recommendation, the per-batch-size "
                        "verdicts and every trial's summary as JSON to this path ('-': standard output, and "
                        "the text report goes to standard error)")
    from engine.hardware.cli import add_find_max_batch
    add_find_max_batch(commands)
    annotate = commands.add_parser("annotate", help="give a run file a name, notes and tags (the Runs tab's "
                                   "Rename and Notes and tags); without options, show them")
    annotate.add_argument("run_file", help="a run file (.h5) that no sweep is writing now")
    annotate.add_argument("--name", help="the name shown for the run instead of its config's ('' gives that back); "
                          "the file keeps its name on disk")
    annotate.add_argument("--notes", help="free text kept with the run ('' removes the notes)")
    annotate.add_argument("--tag", action="append", default=[], metavar="TAG", help="add a tag (repeatable)")
    annotate.add_argument("--untag", action="append", default=[], metavar="TAG", help="remove a tag (repeatable)")
    annotate.add_argument("--clear-tags", action="store_true", help="remove every tag (before any --tag)")
    runs = commands.add_parser("runs", help="list the run files of a folder as the app's Runs tab does")
    runs.add_argument("folder", nargs="?", help="default: the app's workspace folder")
    runs.add_argument("--filter", default="", metavar="WORDS", help="only the runs whose name, tags, dataset, "
                      "model, status or file name hold every word (as the Runs tab's filter box)")
    diff = commands.add_parser("diff", help="the config keys that differ between run files, key by key (the "
                               "app's Compare configs)")
    diff.add_argument("run_files", nargs="+", metavar="RUN.h5", help="two or more run files")
    diff.add_argument("--all", action="store_true", help="also list the keys whose values are the same")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run" and (problem := _run_arguments_problem(args)):
        parser.error(problem)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "report":
            return _report(args)
        if args.command == "find-max-batch":
            from engine.hardware.cli import find_max_batch_command
            return find_max_batch_command(args)
        if args.command == "annotate":
            return _annotate(args)
        if args.command == "diff":
            return _diff(args)
        if args.command == "runs":
            return _runs(args)
    except ConfigError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    except RunWriteError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_WRITE_ERROR
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    build_parser().print_help()
    return EXIT_OK


def resolve_config_path(name: str) -> Path:
    """A path as given, or the bundled preset of that name."""
    from engine.resources import presets
    path = Path(name)
    # The preset test first: a name the file system refuses (too long) is for load_config to explain.
    if name in presets() and not path.exists():
        return presets()[name]
    return path


def _run_arguments_problem(args: argparse.Namespace) -> str:
    if args.resume is not None:
        if args.config is not None:
            return "run: give a config or --resume RUN.h5, not both (a resumed sweep uses the config in its file)"
        if args.out is not None:
            return "run --resume: --out does not apply (the sweep goes on in its own run file)"
        if args.storage is not None:
            return ("run --resume: --storage does not apply (a shared study lives in its journal file: start another "
                    "run with the same --storage instead)")
        return ""
    if args.config is None:
        return "run: the following arguments are required: config (or --resume RUN.h5)"
    if args.out is None:
        return "run: the following arguments are required: --out"
    return ""


def _thread_count(text: str) -> int:
    """argparse type of --threads: a whole number of at least 1."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 4096:
        raise argparse.ArgumentTypeError(f"{text!r} is not a thread count (a whole number from 1)")
    return count


def _run(args: argparse.Namespace) -> int:
    # Heavy imports here, so that --help and argument errors answer at once.
    from tqdm import tqdm

    from engine.config import load_config
    from engine.events import Message, StepsLogged, SweepStarted, TrialEnded, TrialStarted
    from engine.hardware.threads import ThreadPolicy, set_thread_policy
    from engine.resume import plan_resume, resume_sweep
    from engine.sweep import run_sweep

    set_thread_policy(ThreadPolicy(requested=args.threads))
    if args.resume is not None:
        plan = plan_resume(args.resume)
        if plan.already_complete:
            # Not an error: resuming is safe to repeat until the run is complete.
            print(plan.summary(), file=sys.stderr)
            print(plan.path)
            return EXIT_OK
        config = plan.config

        def sweep(on_event, stop):
            return resume_sweep(plan, device=args.device, on_event=on_event, stop=stop)
    else:
        config = load_config(resolve_config_path(args.config))

        def sweep(on_event, stop):
            return run_sweep(config, args.out, device=args.device, on_event=on_event, stop=stop,
                             storage=args.storage)

    stop = threading.Event()
    if args.ray is not None:
        from engine.execution.ray_backend import check_config
        check_config(config)
    interrupted = threading.Event()

    def on_sigint(signum, frame):  # first Ctrl-C: finish cleanly; a second one: the default (abort)
        interrupted.set()
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    bar = None
    seen = {"done": 0, "trial": 0}

    def on_event(event) -> None:
        nonlocal bar
        if isinstance(event, SweepStarted):
            bar = tqdm(total=event.total_samples, unit="sample", unit_scale=True, file=sys.stderr,
                       dynamic_ncols=True, desc=config.name)
            tqdm.write(f"{f'{len(event.trials)} trials' if event.trials else f'A {config.sweep.strategy} search'} "
                       f"on {event.device_name} ({event.device}); "
                       f"writing {event.run_path}", file=sys.stderr)
        elif isinstance(event, Message):
            (tqdm.write if bar else print)(event.text, file=sys.stderr)
        elif isinstance(event, TrialStarted):
            seen["trial"] = 0
            bar.set_description(f"{config.name} · batch {event.trial.batch_size} seed {event.trial.seed}")
        elif isinstance(event, StepsLogged):
            samples = int(event.samples[-1])
            bar.update(samples - seen["trial"])
            seen["trial"] = samples
            bar.set_postfix(loss=f"{float(event.loss[-1]):.3f}", refresh=False)
        elif isinstance(event, TrialEnded):
            if event.status != schema.COMPLETED:
                detail = f": {event.error}" if event.error else ""
                tqdm.write(f"trial {event.trial.name}: {event.status}{detail}", file=sys.stderr)

    try:
        if args.ray is None:
            path = sweep(on_event, stop)
        else:
            from engine.execution.ray_backend import on_cluster
            with on_cluster(args.ray):
                path = sweep(on_event, stop)
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
    print(path)
    return EXIT_INTERRUPTED if interrupted.is_set() else EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from engine.analysis import REPORT_COLUMNS, format_cell, precision_lines, summarize_run
    from engine.runfile import read_attempts, read_run
    from engine.science.recommendation import AUTO_TARGET_FRACTION, configured_target, judge

    if args.target is not None and not 0 < args.target <= 1:
        raise UserError(f"--target {args.target:g}: give the validation accuracy as a fraction between 0 and 1, "
                        "e.g. 0.85")
    from engine.hardware.max_batch import read_saved_search, saved_search_lines
    if len(args.run_file) == 1 and (search := read_saved_search(args.run_file[0])) is not None:
        print(*saved_search_lines(search), sep="\n")
        return EXIT_OK
    runs = [read_run(path) for path in args.run_file]
    if len(runs) > 1:
        from engine.search.shared import merge_runs
    run = runs[0] if len(runs) == 1 else merge_runs(runs)
    verdict = judge(run, args.target)
    summaries = summarize_run(run, verdict.target_accuracy)
    out = sys.stderr if args.json == "-" else sys.stdout
    headers = [title for _, title, _ in REPORT_COLUMNS]
    rows = [[format_cell(s, key, fmt) for key, _, fmt in REPORT_COLUMNS] for s in summaries]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print(f"{run.header.name}: {run.header.dataset}, {run.header.model}, {run.header.status}, "
          f"{len(run.trials)} trials on {run.environment.get('device_name', '?')}", file=out)
    if run.header.note:
        print(f"note: this run file is {run.header.note}", file=out)
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths)), file=out)
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)), file=out)
    for s in summaries:
        if s.error:
            print(f"{s.name}: {s.status}: {s.error}", file=out)
    for line in precision_lines(summaries):
        print(line, file=out)
    for name, attempts in [item for path in args.run_file for item in read_attempts(path).items()]:
        kept = ", ".join(f"{a.status} after {a.epochs_done} epoch{'s' if a.epochs_done != 1 else ''}" for a in attempts)
        print(f"{name}: trained again by a resume; the earlier attempt{'s' if len(attempts) != 1 else ''} "
              f"({kept}) kept in the file", file=out)
    if verdict.target_accuracy is not None:
        source = ("--target" if args.target is not None else "the config's sweep.target_accuracy"
                  if configured_target(run) is not None
                  else f"automatic: {AUTO_TARGET_FRACTION:.0%} of the best trial's")
        print(f"\nTarget: {verdict.target_accuracy:.1%} validation accuracy ({source})", file=out)
    so_far = " (so far: the run is not finished)" if run.header.status == schema.RUNNING else ""
    print(f"\n{verdict.headline}{so_far}", file=out)
    for reason in verdict.reasons:
        print(f"  {reason}", file=out)
    for suggestion in verdict.suggestions:
        print(f"  Next: {suggestion}", file=out)
    from engine.hardware.memory_model import sweep_memory
    print(f"\n{sweep_memory(run).text()}", file=out)
    from engine.hardware.telemetry import energy_text
    print(energy_text(run.trials), file=out)
    from engine.execution.ensemble import execution_text
    if execution := execution_text(run.trials):
        print(execution, file=out)
    from engine.hardware.energy import energy_to_target_text
    print(energy_to_target_text(summaries, verdict.target_accuracy), file=out)
    from engine.science.report import analyse, science_lines
    science = analyse(run, verdict.target_accuracy)
    print("", *science_lines(science), sep="\n", file=out)
    from engine.search.summary import search_report_lines, summarize_search
    search = summarize_search(run)
    if search is not None:
        print("", *search_report_lines(search), sep="\n", file=out)
    if args.json:
        from engine.science.report import report_document, write_report_json
        given = args.target is not None or configured_target(run) is not None
        document = report_document(run, summaries, verdict, given, science)
        if search is not None:
            document["search"] = search.to_json()
        write_report_json(document, args.json)
        if args.json != "-":
            print(f"wrote {args.json}", file=sys.stderr)
    if args.csv:
        _write_csv(Path(args.csv), summaries)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.png:
        from engine.figures import summary_figure
        summary_figure(run, summaries, Path(args.png), verdict)
        print(f"wrote {args.png}", file=sys.stderr)
        from engine.figures import findings_figure, findings_figure_path
        findings_figure(science.findings, findings_figure_path(Path(args.png)))
        print(f"wrote {findings_figure_path(Path(args.png))}", file=sys.stderr)
        if search is not None:
            from engine.search.figure import search_figure, search_figure_path
            search_figure(search, search_figure_path(Path(args.png)))
            print(f"wrote {search_figure_path(Path(args.png))}", file=sys.stderr)
    return EXIT_OK


def _annotate(args: argparse.Namespace) -> int:
    from engine.annotations import annotate, tags_text
    from engine.runfile import read_header

    changes = args.name is not None or args.notes is not None or args.tag or args.untag or args.clear_tags
    if changes:
        after = annotate(args.run_file, name=args.name, notes=args.notes, tags=() if args.clear_tags else None,
                         add_tags=args.tag, remove_tags=args.untag)
        name, notes, tags = after.name, after.notes, after.tags
    else:
        header = read_header(args.run_file)
        name, notes, tags = header.given_name, header.notes, header.tags
    print(f"name: {name or '(the config name)'}")
    print(f"tags: {tags_text(tags) or '(none)'}")
    print("notes:" + ("".join(f"\n  {line}" for line in notes.splitlines()) if notes else " (none)"))
    return EXIT_OK


def _runs(args: argparse.Namespace) -> int:
    from engine.annotations import tags_text
    from engine.errors import RunFileError
    from engine.resources import default_workspace
    from engine.run_listing import matches, problem_text, run_files, short_error, status_text
    from engine.runfile import read_header

    folder = Path(args.folder) if args.folder else default_workspace()
    try:
        paths = run_files(folder)
    except OSError as error:
        raise UserError(f"{folder}: cannot be listed ({error.strerror or error})") from None
    rows, unreadable = [], 0
    for path in paths:
        try:
            header = read_header(path)
        except RunFileError as error:
            unreadable += 1
            rows.append([path.stem, "", "", "", "", "", "", problem_text(short_error(str(error), path)), path.name])
            continue
        rows.append([header.name, tags_text(header.tags), header.created, header.dataset, header.model,
                     ", ".join(str(size) for size in header.batch_sizes), str(header.trial_count),
                     status_text(header), path.name])
    words = args.filter.split()
    # The filter box's columns: name, tags, dataset, model, status, file.
    shown = [row for row in rows if matches([row[0], row[1], row[3], row[4], row[7], row[8]], words)]
    titles = ["name", "tags", "created", "dataset", "model", "batch sizes", "trials", "status", "file"]
    widths = [max(len(row[column]) for row in [titles, *shown]) for column in range(len(titles))]
    for row in [titles, *shown]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    summary = f"{len(rows) - unreadable} runs, {unreadable} unreadable files in {folder}"
    print(summary + (f"; {len(shown)} shown by the filter" if words else ""), file=sys.stderr)
    return EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    import tomllib

    from engine.config_diff import config_diff, value_text
    from engine.runfile import read_header

    if len(args.run_files) < 2:
        raise UserError("diff: give two or more run files to compare")
    headers = [read_header(path) for path in args.run_files]
    diffs = config_diff([tomllib.loads(header.config_text) for header in headers])
    shown = [diff for diff in diffs if diff.differs or args.all]
    different = sum(diff.differs for diff in diffs)
    print(f"{different} of {len(diffs)} config keys differ between {len(headers)} runs", file=sys.stderr)
    titles = ["key", *(f"{header.name} ({Path(header.path).name})" for header in headers)]
    rows = [[diff.key + ("" if diff.differs else " (same)"), *(value_text(value) for value in diff.values)]
            for diff in shown]
    widths = [max(len(row[column]) for row in [titles, *rows]) for column in range(len(titles))]
    for row in [titles, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return EXIT_OK


def _write_csv(path: Path, summaries) -> None:
    from dataclasses import asdict, fields

    from engine.analysis import TrialSummary
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            names = [f.name for f in fields(TrialSummary)]
            writer.writerow(names)
            for summary in summaries:
                values = asdict(summary)
                writer.writerow(["" if isinstance(values[n], float) and math.isnan(values[n]) else values[n]
                                 for n in names])
    except OSError as error:
        raise UserError(f"--csv {path}: cannot be written ({error.strerror})") from None
