"""The sweep's progress and time-left estimate (engine.progress), with a fake clock: synthetic sweeps whose cost
per step is known exactly, and recorded real sweeps replayed at the moments their events arrived."""
from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import schema
from engine.events import (EpochEnded, Event, Message, StepsLogged, SweepEnded, SweepStarted, TrialEnded,
                           TrialStarted)
from engine.progress import ENDED, IDLE, ONE_SIZE_EXPONENT, PREPARING, TRAINING, SweepProgress
from tests.gui.runfactory import sweep_events
from tests.progress_recordings import RECORDINGS, FakeClock, load, replay

SETUP_S = 0.05          # synthetic sweeps: between two trials
EVAL_S = 0.03           # synthetic sweeps: evaluation after each epoch


def step_seconds(batch_size: int) -> float:
    """What runfactory's curves cost per step (its wall_time_s): a fixed part and a part per sample."""
    return 0.002 + batch_size * 2.0e-5


def clocked(events: Iterator[Event]) -> Iterator[tuple[float, Event]]:
    """Give a synthetic event stream the moments a real sweep would have: training time from the events'
    own training clock, plus set-up before each trial and evaluation after each epoch."""
    now = trial_start = 0.0
    epochs_done = 0
    for event in events:
        if isinstance(event, SweepStarted):
            now = 1.0                                   # loading the data
        elif isinstance(event, TrialStarted):
            now += SETUP_S
            trial_start, epochs_done = now, 0
        elif isinstance(event, StepsLogged):
            now = trial_start + float(event.wall_time_s[-1]) + epochs_done * EVAL_S
        elif isinstance(event, EpochEnded):
            epochs_done += 1
            now = trial_start + event.metrics["wall_time_s"] + epochs_done * EVAL_S
        yield now, event


def eta_errors(recording: list[tuple[float, Event]], after_trials: int = 1, min_left_s: float = 0.0):
    """(moment, relative error of the time left) at every event once `after_trials` trials ended, while
    more than min_left_s of the sweep remained."""
    end = recording[-1][0]
    clock = FakeClock()
    progress = SweepProgress(clock)
    progress.start()
    errors = []
    for moment, event in replay(recording, clock):
        progress.apply(event)
        left = end - moment
        if progress.trials_ended() >= after_trials and left > min_left_s and not isinstance(event, SweepEnded):
            eta = progress.eta_s()
            assert eta is not None, (moment, event)
            errors.append((moment, event, (eta - left) / left))
    return errors


def test_preparing_shows_what_happens_and_no_number():
    clock = FakeClock()
    progress = SweepProgress(clock)
    assert progress.phase == IDLE and progress.eta_s() is None
    progress.start("Preparing the data set mnist1d…")
    clock.now = 3.0
    assert progress.phase == PREPARING and progress.activity == "Preparing the data set mnist1d…"
    assert progress.sweep_fraction() is None and progress.eta_s() is None        # a busy bar, not "0%"
    assert progress.elapsed_s() == 3.0
    progress.apply(Message("mnist1d: 3200 training and 800 validation examples"))
    assert progress.activity.startswith("mnist1d: 3200 training")
    events = list(sweep_events(batch_sizes=(16, 32), epochs=2))
    progress.apply(events[0])
    assert progress.phase == TRAINING and progress.trial_count == 2 and progress.current is None
    assert progress.eta_s() is None                                              # nothing measured yet


def test_measured_batch_sizes_are_used_and_others_interpolated_in_log_batch_size():
    recording = list(clocked(sweep_events(batch_sizes=(16, 64, 256), epochs=3, train_size=4096, chunk_steps=8)))
    clock = FakeClock()
    progress = SweepProgress(clock)
    progress.start()
    seen = 0
    for _, event in replay(recording, clock):
        progress.apply(event)
        if isinstance(event, TrialEnded):
            seen += 1
            if seen == 1:
                # One size measured: the cost per step grows by the assumed exponent until a second is.
                assert progress.step_time_s(256) == pytest.approx(progress.step_time_s(16) * 16 ** ONE_SIZE_EXPONENT)
    for batch_size in (16, 64, 256):     # measured, from the recent steps (the curves have ±2% noise)
        assert progress.step_time_s(batch_size) == pytest.approx(step_seconds(batch_size), rel=0.05)
    # 32 lies between 16 and 64 on a log scale; 1024 and 4 beyond, along the fitted power law (exponent ≤ 1).
    assert step_seconds(16) < progress.step_time_s(32) < step_seconds(64)
    assert progress.step_time_s(32) == pytest.approx(step_seconds(32), rel=0.1)
    assert step_seconds(256) < progress.step_time_s(1024) <= step_seconds(256) * 4
    # Upwards the cost bends up (per sample takes over): at least as steep as between the two largest sizes.
    assert progress.step_time_s(1024) == pytest.approx(
        progress.step_time_s(256) * progress.step_time_s(256) / progress.step_time_s(64))
    assert step_seconds(16) / 4 <= progress.step_time_s(4) < step_seconds(16)


def test_synthetic_sweeps_the_estimate_holds_once_two_batch_sizes_trained():
    for batch_sizes in ((16, 64, 256), (8, 32, 128, 512), (32, 32 * 3, 32 * 9)):
        recording = list(clocked(sweep_events(batch_sizes=batch_sizes, epochs=4, train_size=4096, chunk_steps=8)))
        errors = eta_errors(recording, min_left_s=0.3)
        assert abs(errors[0][2]) < 0.25, (batch_sizes, errors[0][2])
        later = [error for _, _, error in eta_errors(recording, after_trials=2, min_left_s=0.3)]
        assert max(abs(error) for error in later) < 0.35, (batch_sizes, later)
        assert statistics.median(abs(error) for error in later) < 0.3, batch_sizes


def naive_samples_eta(recording: list[tuple[float, Event]], moment: float) -> float:
    """The estimate this replaced: elapsed time scaled by the share of training samples done."""
    total = next(event.total_samples for _, event in recording if isinstance(event, SweepStarted))
    done = 0
    for when, event in recording:
        if when > moment:
            break
        if isinstance(event, TrialStarted):
            done += event.total_samples
    return moment * (total - done) / done


RECORDED = sorted(RECORDINGS.glob("*.json.gz"))


@pytest.mark.parametrize("path", RECORDED, ids=[p.name.split(".")[0] for p in RECORDED])
def test_recorded_sweeps_the_time_left_holds_after_the_first_trial(path: Path):
    recording = load(path)
    errors = eta_errors(recording, after_trials=1)
    first_moment, _, first_error = errors[0]
    left = recording[-1][0] - first_moment
    # The estimate this replaced, by the share of samples done, was several times too high here.
    assert naive_samples_eta(recording, first_moment) > 1.5 * left
    # When the first trial ends only one batch size is measured (see engine.progress.ONE_SIZE_EXPONENT); the
    # five presets were then 0%, -15%, +17%, -17% and +14% off. From then on the median error over every event
    # is 13-22%.
    assert abs(first_error) < 0.25, f"when the first trial ended: {first_error:+.0%}"
    assert statistics.median(abs(error) for _, _, error in errors) < 0.25
    later = [error for _, event, error in eta_errors(recording, after_trials=2, min_left_s=1.0)]
    assert all(abs(error) < 0.35 for error in later), later       # 19-30% at worst


def test_recorded_demo_preset_the_time_left_after_the_first_trial_is_within_a_quarter():
    """The issue's case: the demo preset, whose estimate was 7 min 35 s with 42 s left."""
    recording = load(RECORDINGS / "demo.json.gz")
    at_trial_ends = [error for _, event, error in eta_errors(recording, min_left_s=0.5)
                     if isinstance(event, TrialEnded)]
    assert len(at_trial_ends) == 3 and abs(at_trial_ends[0]) < 0.25, at_trial_ends
    # Later, with a second or less left, the larger batch sizes' extra cost per sample is underestimated.
    assert all(abs(error) < 0.4 for error in at_trial_ends), at_trial_ends


def test_recordings_exist_for_both_budgets():
    budgets = set()
    for path in RECORDED:
        started = next(event for _, event in load(path) if isinstance(event, SweepStarted))
        budgets.add("samples" if 'budget = "samples"' in started.config_text else "epochs")
    assert budgets == {"epochs", "samples"}


def test_samples_budget_plans_fewer_steps_for_larger_batches():
    events = list(sweep_events(batch_sizes=(16, 64), epochs=2))
    started = events[0]
    text = started.config_text.replace("epochs = 2", 'budget = "samples"\nsamples = 6400')
    progress = SweepProgress(FakeClock())
    progress.start()
    progress.apply(SweepStarted(**{**started.__dict__, "config_text": text}))
    plans = progress.planned_steps()
    assert plans == {started.trials[0].name: 400, started.trials[1].name: 100}


def test_stopped_sweep_ends_without_an_estimate_and_says_how_it_ended():
    clock = FakeClock()
    progress = SweepProgress(clock)
    progress.start()
    for moment, event in replay(list(clocked(sweep_events(batch_sizes=(16, 32, 64), stop_after_trials=1))), clock):
        progress.apply(event)
    assert progress.phase == ENDED and progress.status == schema.CANCELLED
    assert progress.eta_s() is None and progress.sweep_fraction() is None
    elapsed = progress.elapsed_s()
    clock.now += 100
    assert progress.elapsed_s() == elapsed           # the clock stopped with the sweep
