"""ssmbook.widgets: sliders, live widget redraws, the static twin."""
import json
import re

import numpy as np
import pytest

from ssmbook.widgets import Explorer, choice_slider, linear_slider, log_slider


def draw(fig, delta, N):
    ax = fig.subplots()
    t = np.linspace(0, 5, 50)
    for n in range(N):
        ax.plot(t, np.exp(-(n + 1) * delta * t))
    ax.set_title(f"{delta:.3g} {N}")


def make():
    return Explorer(draw, delta=log_slider(1e-2, 1.0, n=3, value=0.1, description="Δ"),
                    N=choice_slider([1, 2, 4], value=2))


def test_log_slider_is_log_spaced_and_snaps():
    s = log_slider(1e-3, 1e1, n=5, value=0.09)
    np.testing.assert_allclose(s.values, [1e-3, 1e-2, 1e-1, 1.0, 10.0])
    np.testing.assert_allclose(np.diff(np.log10(s.values)), 1.0)
    assert s.value == pytest.approx(0.1)
    assert s.scale == "log"


@pytest.mark.parametrize("bad", [dict(lo=0, hi=1), dict(lo=2, hi=1), dict(lo=1, hi=2, n=1)])
def test_log_slider_rejects_bad_ranges(bad):
    with pytest.raises(ValueError, match="lo|n must"):
        log_slider(**bad)


def test_choice_and_linear_sliders():
    assert choice_slider([1, 2, 4, 8]).value == 4
    with pytest.raises(ValueError, match="not one of"):
        choice_slider([1, 2], value=3)
    s = linear_slider(0.0, 1.0, n=5, value=0.3)
    assert s.value == pytest.approx(0.25)


def test_explorer_validates_arguments():
    with pytest.raises(ValueError, match="at least one slider"):
        Explorer(draw)
    with pytest.raises(ValueError, match="must be a Slider"):
        Explorer(draw, delta=[0.1, 1.0])
    with pytest.raises(ValueError, match="combinations"):
        Explorer(draw, a=choice_slider(list(range(10))), b=choice_slider(list(range(10))))
    with pytest.raises(ValueError, match="unknown slider"):
        make().render(dt=0.1)


def test_render_depends_on_the_values():
    ex = make()
    a, b = ex.render(delta=0.01, N=1), ex.render(delta=1.0, N=4)
    assert a[:8] == b[:8] == b"\x89PNG\r\n\x1a\n"
    assert a != b
    assert ex.render(delta=0.01, N=1) == a  # deterministic
    assert ex.last_redraw_s is not None and ex.last_redraw_s > 0


def test_live_widget_has_the_sliders_and_redraws_on_change():
    ex = make()
    box = ex.widget()
    assert set(box.controls) == {"delta", "N"}
    assert box.controls["delta"].description == "Δ"
    assert [v for _, v in box.controls["N"].options] == [1, 2, 4]
    before = box.image.value
    box.controls["N"].value = 4
    after = box.image.value
    assert after != before
    assert after == ex.render(fast=True, delta=box.controls["delta"].value, N=4)


def test_fast_redraw_reuses_the_layout():
    ex = make()
    full = ex.render(delta=0.1, N=2)
    assert ex.render(fast=True, delta=0.1, N=2) == full  # same values: the same picture
    assert ex.render(fast=True, delta=1.0, N=4) != full


def test_static_twin_holds_every_frame_and_a_script():
    ex = make()
    html = ex.static_html()
    data = json.loads(re.search(r'<script type="application/json" class="ssmbook-explorer-data">(.*?)</script>',
                                html, re.S).group(1))
    assert sorted(data["frames"]) == sorted(f"{i}_{j}" for i in range(3) for j in range(3))
    assert [p["name"] for p in data["params"]] == ["delta", "N"]
    assert len(set(data["frames"].values())) == 9  # every combination draws a different picture
    assert html.count('type="range"') == 2
    assert "addEventListener('input'" in html
    assert "http" not in html.split("<script>")[1]  # self-contained: nothing fetched
    ms = float(re.search(r'data-median-redraw-ms="([0-9.]+)"', html).group(1))
    assert ms > 0 and ms == pytest.approx(1000 * ex.median_redraw_s, abs=0.06)


def test_mimebundle_carries_widget_and_static_twin():
    bundle = make()._repr_mimebundle_()
    assert "text/html" in bundle and "ssmbook-explorer" in bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
