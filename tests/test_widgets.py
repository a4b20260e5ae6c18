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
    return Explorer(
        draw,
        delta=log_slider(1e-2, 1.0, n=3, value=0.1, description="Δ"),
        N=choice_slider([1, 2, 4], value=2),
    )


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
    with pytest.raises(ValueError, match="value must be one of the slider's values"):
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
    data = json.loads(
        re.search(
            r'<script type="application/json" class="ssmbook-explorer-data">(.*?)</script>',
            html,
            re.S,
        ).group(1)
    )
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


# ---------------------------------------------------------------- slider arguments


@pytest.mark.parametrize(
    "make_slider",
    [
        lambda v: log_slider(1e-3, 1.0, n=4, value=v),
        lambda v: linear_slider(-1.0, 1.0, n=5, value=v),
    ],
)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 5.0, -5.0])
def test_sliders_reject_nan_and_out_of_range_values(make_slider, bad):
    with pytest.raises(ValueError, match=r"value must lie in the slider's range \[") as err:
        make_slider(bad)
    assert repr(bad) in str(err.value)


def test_sliders_name_the_range_in_the_error():
    with pytest.raises(ValueError, match=r"range \[0.001, 1\], got 2"):
        log_slider(1e-3, 1.0, n=4, value=2)
    with pytest.raises(ValueError, match=r"range \[-1, 1\], got -1.5"):
        linear_slider(-1.0, 1.0, n=5, value=-1.5)
    with pytest.raises(ValueError, match="value must be a number"):
        linear_slider(0.0, 1.0, value="half")


def test_sliders_snap_values_inside_the_range_and_keep_the_ends():
    s = log_slider(1e-3, 1.0, n=4, value=0.02)  # grid 1e-3, 1e-2, 1e-1, 1: log-nearest is 1e-2
    assert s.value == pytest.approx(1e-2)
    assert log_slider(1e-3, 1.0, n=4, value=1.0).value == pytest.approx(1.0)
    assert log_slider(1e-3, 1.0, n=4, value=1e-3).value == pytest.approx(1e-3)
    assert linear_slider(-1.0, 1.0, n=5, value=-1.0).value == pytest.approx(-1.0)
    assert linear_slider(-1.0, 1.0, n=5, value=0.6).value == pytest.approx(0.5)
    # a value a rounding error outside the range is the end point, not an error
    assert linear_slider(0.0, 0.3, n=4, value=0.1 + 0.2).value == pytest.approx(0.3)


@pytest.mark.parametrize(
    "args, match",
    [
        (dict(lo=float("nan"), hi=1.0), "lo must be a finite real number"),
        (dict(lo=0.1, hi=float("inf")), "hi must be a finite real number"),
        (dict(lo=0.1, hi=1.0, n=2.5), "n must be an int >= 2"),
        (dict(lo=0.1, hi=1.0, n=True), "n must be an int >= 2"),
        (dict(lo=1.0, hi=1.0), "lo < hi"),
    ],
)
def test_slider_ranges_are_checked(args, match):
    for fn in (log_slider, linear_slider):
        with pytest.raises(ValueError, match=match):
            fn(**args)


def test_choice_slider_rejects_a_value_not_on_the_list():
    with pytest.raises(ValueError, match=r"value must be one of the slider's values \[1, 2\], got nan"):
        choice_slider([1, 2], value=float("nan"))


# ---------------------------------------------------------------- pictures for screens and phones


def png_size(png):
    from PIL import Image
    import io

    return Image.open(io.BytesIO(png)).size


def two_panels(fig, delta, N):
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[2, 1])
    t = np.linspace(0, 5, 50)
    for n in range(N):
        ax1.plot(t, np.exp(-(n + 1) * delta * t), label=f"n={n}")
    ax1.legend(fontsize=7)
    ax1.tick_params(labelsize=7)
    ax2.bar([0, 1], [delta, N])
    ax2.set_title("sizes", fontsize=8)
    fig.captured = (ax1, ax2)


def make_two_panels(**kw):
    return Explorer(
        two_panels,
        delta=log_slider(1e-2, 1.0, n=2, value=0.1, description="Δ"),
        N=choice_slider([1, 3], value=3),
        figsize=(8, 3),
        **kw,
    )


def test_frames_are_drawn_at_twice_the_css_size():
    ex = make_two_panels()
    png = ex.render()
    assert ex.css_size["wide"] == (576, 216)  # 8 x 3 inches at 72 CSS px per inch
    assert png_size(png) == (1152, 432)
    ex1 = make_two_panels(pixel_ratio=1)
    assert png_size(ex1.render()) == (576, 216)


def test_frames_are_palette_pngs():
    from PIL import Image
    import io

    assert Image.open(io.BytesIO(make_two_panels().render())).mode == "P"


def test_narrow_layout_stacks_side_by_side_panels_and_enlarges_small_text():
    ex = make_two_panels()
    captured = {}

    def spy(fig, **kw):
        two_panels(fig, **kw)
        captured["fig"] = fig

    ex.draw = spy
    ex.render(layout="wide")
    a, b = (ax.get_position() for ax in captured["fig"].captured)
    assert a.x1 <= b.x0  # side by side
    assert ex.smallest_font_pt["wide"] == 7
    png = ex.render(layout="narrow")
    a, b = (ax.get_position() for ax in captured["fig"].captured)
    assert a.y0 >= b.y1  # first panel above the second
    assert (a.y1 - a.y0) > 1.5 * (b.y1 - b.y0)  # width ratios became height ratios
    w, h = ex.css_size["narrow"]
    assert w == round(72 * 4.6) and h > w
    assert png_size(png) == (2 * w, 2 * h)
    assert ex.smallest_font_pt["narrow"] >= 9.5


def test_narrow_layout_default_follows_the_width():
    assert make_two_panels().narrow
    assert not Explorer(draw, delta=log_slider(1e-2, 1.0, n=2), figsize=(4, 3)).narrow
    with pytest.raises(ValueError, match="layout must be one of"):
        make_two_panels().render(layout="tall")
    with pytest.raises(ValueError, match="pixel_ratio"):
        make_two_panels(pixel_ratio=0)
    with pytest.raises(ValueError, match="figsize"):
        Explorer(draw, delta=log_slider(1e-2, 1.0, n=2), figsize=(4,))


def explorer_data(html):
    return json.loads(
        re.search(
            r'<script type="application/json" class="ssmbook-explorer-data">(.*?)</script>',
            html,
            re.S,
        ).group(1)
    )


def test_static_twin_carries_both_layouts_with_their_sizes():
    ex = make_two_panels()
    html = ex.static_html()
    data = explorer_data(html)
    assert data["size"] == [576, 216]
    assert data["narrow"]["size"] == list(ex.css_size["narrow"])
    assert (
        sorted(data["narrow"]["frames"]) == sorted(data["frames"]) == ["0_0", "0_1", "1_0", "1_1"]
    )
    assert set(data["narrow"]["frames"].values()).isdisjoint(data["frames"].values())
    assert data["font_px"] == 7 and data["narrow"]["font_px"] >= 9.5
    assert [p["description"] for p in data["params"]] == ["Δ", "N"]
    img = re.search(r'<img class="ssmbook-explorer-frame"[^>]*>', html).group(0)
    assert 'width="576" height="216"' in img
    assert 'alt="Explorer picture for Δ = 0.01, N = 3"' in img
    assert 'src="data:image/png;base64,' + data["frames"]["0_1"] + '"' in img


# ---------------------------------------------------------------- the book's build step


def site_extension():
    import importlib
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "book" / "_ext"))
    try:
        return importlib.import_module("ssmbook_site")
    finally:
        sys.path.pop(0)


def test_build_step_moves_frames_into_files(tmp_path):
    import base64
    import io

    from PIL import Image

    ext = site_extension()
    ex = make_two_panels()
    html = ex.static_html()
    inline = explorer_data(html)
    out = ext.externalize(html, tmp_path, "../_images/explorers")
    data = explorer_data(out)
    assert data["files"] is True
    assert "data:image/png;base64,i" not in out and len(out) < len(html) / 10
    for layout_in, layout_out in ((inline, data), (inline["narrow"], data["narrow"])):
        for key, name in layout_out["frames"].items():
            path = tmp_path / "_images" / "explorers" / name
            assert name.endswith(".webp")
            with (
                Image.open(path) as got,
                Image.open(io.BytesIO(base64.b64decode(layout_in["frames"][key]))) as want,
            ):
                # lossless: the same picture, pixel for pixel
                assert got.size == want.size
                assert np.array_equal(
                    np.asarray(got.convert("RGB")), np.asarray(want.convert("RGB"))
                )
    first = data["frames"]["0_1"]
    assert f'src="../_images/explorers/{first}" loading="lazy"' in out
    assert len(list((tmp_path / "_images" / "explorers").iterdir())) == 8
    # the rest of the explorer is untouched
    assert out.split("<img")[0] == html.split("<img")[0]
    assert ext.externalize(out, tmp_path, "../_images/explorers") == out  # idempotent
