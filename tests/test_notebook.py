"""ssmbook.notebook: showing library code (show, sections, source) and the chapters' timing helpers
(timed, best_time, median_time, on a fake clock)."""
import time

import numpy as np
import pytest

import ssmbook
from ssmbook import notebook, sections, show

# ---- show / sections / source: the one way chapters display library code ---------------------


def _demo(x):
    """A function with two marked sections."""
    y = x + 1
    # --- double it ---
    y = 2 * y
    # --- return ---
    return y


def test_sections_split_at_markers_and_join_back():
    parts = sections(_demo)
    assert [t for t, _ in parts] == ["signature", "double it", "return"]
    assert "".join(code for _, code in parts) == ssmbook.source(_demo)
    assert "y = 2 * y" in dict(parts)["double it"]
    assert "y = 2 * y" not in dict(parts)["return"]


def test_show_section_is_dedented_and_fenced():
    md = show(_demo, section="double it").data
    assert md.startswith("```python\n# --- double it ---\ny = 2 * y")
    assert "return y" not in md and md.endswith("\n```")


def test_show_whole_source_and_line_slice():
    assert "def _demo(x):" in show(_demo).data
    sliced = show(_demo, lines=(1, 1)).data
    assert sliced == "```python\ndef _demo(x):\n```"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(section="nope"), "section must be one of"),
        (dict(lines=(0, 2)), "lines must be"),
        (dict(lines=(3, 2)), "lines must be"),
        (dict(lines=[1, 2]), "lines must be"),
        (dict(section="return", lines=(1, 1)), "either section= or lines="),
    ],
)
def test_show_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        show(_demo, **kwargs)


def test_source_of_an_object_without_source_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot find the source"):
        ssmbook.source(len)


# ---- the timing helpers chapters share ---------------------------------------------------------


def fake_clock(monkeypatch, durations):
    """Make time.perf_counter advance by the given durations, one per timed call."""
    ticks = iter(np.cumsum([0.0] + [d for dur in durations for d in (dur, 0.0)]))
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))


def counter():
    calls = []

    def fn():
        calls.append(len(calls))
        return len(calls)

    return fn, calls


def test_best_time_is_the_fastest_call(monkeypatch):
    fake_clock(monkeypatch, [0.5, 0.2, 0.9])
    fn, calls = counter()
    assert notebook.best_time(fn, repeat=3) == pytest.approx(0.2)
    assert calls == [0, 1, 2]


def test_median_time_is_the_median_call(monkeypatch):
    fake_clock(monkeypatch, [0.5, 0.2, 0.9, 0.4])
    fn, calls = counter()
    assert notebook.median_time(fn, repeat=4) == pytest.approx(0.45)
    assert len(calls) == 4


def test_timed_returns_the_last_result_and_min_or_median(monkeypatch):
    fake_clock(monkeypatch, [0.5, 0.2, 0.9, 0.4])
    fn, calls = counter()
    seconds, result = notebook.timed(fn, repeat=4)
    assert seconds == pytest.approx(0.2) and result == 4 and len(calls) == 4
    fake_clock(monkeypatch, [0.5, 0.2, 0.9])
    seconds, result = notebook.timed(fn, repeat=3, stat="median")
    assert seconds == pytest.approx(0.5) and result == 7


def test_timed_with_the_real_clock_gives_a_positive_time():
    seconds, result = notebook.timed(lambda: sum(range(1000)), repeat=2)
    assert seconds > 0 and result == 499500


@pytest.mark.parametrize("kwargs, match", [
    (dict(fn=1), "fn must be callable"),
    (dict(fn=lambda: 0, repeat=0), "repeat must be a positive int"),
    (dict(fn=lambda: 0, repeat=2.0), "repeat must be a positive int"),
    (dict(fn=lambda: 0, repeat=True), "repeat must be a positive int"),
    (dict(fn=lambda: 0, stat="mean"), "stat must be 'min' or 'median'"),
])
def test_timed_rejects_bad_arguments(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        notebook.timed(**kwargs)
    if "stat" not in kwargs:
        for helper in (notebook.best_time, notebook.median_time):
            with pytest.raises((TypeError, ValueError), match=match):
                helper(**kwargs)
