"""Explorers: sliders wired to a figure, live in Jupyter/Colab and still alive in the static book.

An :class:`Explorer` wraps a drawing function ``draw(fig, **params)`` and a few sliders.

* In a live kernel (Jupyter, Colab) it shows ipywidgets sliders and an image that is redrawn on
  every change (``Explorer.widget()``).
* The rendered web page has no kernel, so the same object also carries a *static twin*: every
  combination of slider positions is drawn once, ahead of time, and a small inline script swaps the
  pictures when a slider moves (``Explorer.static_html()``).  It needs nothing from the network.

Both travel in one display bundle (``_repr_mimebundle_``): Jupyter front ends pick the live widget,
and the book (``nb_mime_priority_overrides`` in ``_config.yml``) picks the static HTML.

Example::

    def draw(fig, delta, N):
        ax = fig.subplots()
        ...

    Explorer(draw, delta=log_slider(1e-3, 1.0, n=7, value=0.1, description="Δ"),
             N=choice_slider([1, 2, 4, 8, 16], value=4))
"""
from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from . import _checks

MAX_FRAMES = 96


@dataclass
class Slider:
    """A slider over a fixed grid of values (the static twin needs a finite grid)."""

    values: tuple
    value: object
    description: str = ""
    scale: str = "choice"  # "log", "linear" or "choice"
    fmt: str = "{:.3g}"
    labels: tuple = field(default=())

    def __post_init__(self):
        if len(self.values) == 0:
            raise ValueError("values must hold at least one value")
        if self.value not in self.values:
            raise ValueError(f"value must be one of the slider's values {list(self.values)}, got {self.value!r}")
        if not self.labels:
            self.labels = tuple(self.format(v) for v in self.values)

    def format(self, v) -> str:
        if isinstance(v, (int, np.integer)) or isinstance(v, str):
            return str(v)
        return self.fmt.format(v)

    @property
    def index(self) -> int:
        return self.values.index(self.value)


def _grid_default(values, value, scale: str):
    """The grid value nearest to ``value`` (the middle one when ``value`` is None).

    A value inside the grid's range snaps to the nearest grid value (distance measured on the
    log scale for ``scale="log"``); NaN or a value outside ``[values[0], values[-1]]`` raises.
    """
    if value is None:
        return values[len(values) // 2]
    lo, hi = values[0], values[-1]
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"value must be a number in [{lo:g}, {hi:g}], got {value!r}") from None
    tol = 1e-9 * max(abs(lo), abs(hi))
    if not math.isfinite(v) or v < lo - tol or v > hi + tol:
        raise ValueError(f"value must lie in the slider's range [{lo:g}, {hi:g}], got {value!r}")
    if scale == "log":
        v = max(v, lo)  # inside the tolerance below lo: snap to lo
        return min(values, key=lambda g: abs(math.log(g) - math.log(v)))
    return min(values, key=lambda g: abs(g - v))


def _grid_size(kind: str, lo, hi, n, positive: bool = False) -> int:
    """Check a slider's range and grid size; return the grid size as an int."""
    lo, hi = _checks.real_scalar(lo, "lo"), _checks.real_scalar(hi, "hi")
    if positive and not lo > 0:
        raise ValueError(f"lo must be > 0 for the log scale of {kind} (0 < lo < hi), got lo={lo}, hi={hi}")
    if not hi > lo:
        raise ValueError(f"hi must be > lo ({kind} needs lo < hi), got lo={lo}, hi={hi}")
    return _checks.positive_int(n, "n", minimum=2)


def log_slider(lo: float, hi: float, n: int = 9, value: float | None = None, description: str = "",
               fmt: str = "{:.3g}") -> Slider:
    """A slider over ``n`` log-spaced values from ``lo`` to ``hi`` (both > 0).

    ``value`` (default: the middle of the grid) must lie in ``[lo, hi]``; it snaps to the nearest
    grid value on the log scale.
    """
    n = _grid_size("log_slider", lo, hi, n, positive=True)
    values = tuple(float(v) for v in np.logspace(math.log10(lo), math.log10(hi), n))
    return Slider(values, _grid_default(values, value, "log"), description, "log", fmt)


def linear_slider(lo: float, hi: float, n: int = 9, value: float | None = None, description: str = "",
                  fmt: str = "{:.3g}") -> Slider:
    """A slider over ``n`` evenly spaced values from ``lo`` to ``hi``.

    ``value`` (default: the middle of the grid) must lie in ``[lo, hi]``; it snaps to the nearest
    grid value.
    """
    n = _grid_size("linear_slider", lo, hi, n)
    values = tuple(float(v) for v in np.linspace(lo, hi, n))
    return Slider(values, _grid_default(values, value, "linear"), description, "linear", fmt)


def choice_slider(values: Sequence, value=None, description: str = "") -> Slider:
    """A slider over the given values (e.g. state sizes ``[1, 2, 4, 8, 16]``).

    ``value`` (default: the middle one) must be one of ``values``.
    """
    values = tuple(values)
    if len(values) == 0:
        raise ValueError("values must hold at least one value")
    if value is None:
        value = values[len(values) // 2]
    return Slider(values, value, description, "choice")


#: Width of the narrow layout (inches at 72 CSS px per inch: 331 px, what a 390-px phone shows
#: after the page margins), the font size its pictures are drawn with, and the smallest font
#: size any text in them keeps (labels a drawing sets smaller are enlarged to it).
NARROW_WIDTH_IN = 4.6
NARROW_FONT_PT = 11.0
NARROW_MIN_FONT_PT = 9.5


def _stack_side_by_side(fig) -> dict:
    """Make ``fig.subplots(1, n, ...)`` lay the n panels out in one column instead of one row.

    The drawing function gets the same (squeezed) array of axes it asked for; width ratios become
    height ratios.  Returns a dict whose ``"panels"`` entry counts the panels that were stacked.
    """
    info = {"panels": 0}
    original = fig.subplots

    def subplots(nrows=1, ncols=1, **kw):
        if nrows != 1 or ncols <= 1:
            return original(nrows, ncols, **kw)
        kw = dict(kw)
        if "width_ratios" in kw:
            kw["height_ratios"] = kw.pop("width_ratios")
        gs = dict(kw.get("gridspec_kw") or {})
        if "width_ratios" in gs:
            gs["height_ratios"] = gs.pop("width_ratios")
            kw["gridspec_kw"] = gs
        info["panels"] = ncols
        axs = original(ncols, 1, **kw)
        return axs.T if not kw.get("squeeze", True) else axs

    fig.subplots = subplots
    return info


def _enlarge_small_text(fig, min_pt: float) -> None:
    """Raise every text of the drawn figure (tick labels included) to at least ``min_pt``."""
    from matplotlib.text import Text

    for ax in fig.axes:
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            for which, ticks in (("major", axis.get_major_ticks()), ("minor", axis.get_minor_ticks())):
                if ticks and ticks[0].label1.get_fontsize() < min_pt:
                    ax.tick_params(axis=name, which=which, labelsize=min_pt)
    for t in fig.findobj(Text):
        if t.get_fontsize() < min_pt:
            t.set_fontsize(min_pt)


def _smallest_font_pt(fig) -> float:
    """The smallest font size (points) of any visible, non-empty text in the drawn figure."""
    from matplotlib.text import Text

    sizes = [t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip()]
    return float(min(sizes)) if sizes else float("nan")


def _palette_png(fig, dpi: float) -> bytes:
    """Save the figure as an 8-bit palette PNG: plots use few colours, so it looks the same and
    takes less than half the bytes of an RGBA PNG (about 20 kB instead of 52 kB a 2x frame)."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    im = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                                 dither=Image.Dither.NONE)
    out = io.BytesIO()
    im.save(out, format="PNG", optimize=True)
    return out.getvalue()


class Explorer:
    """Sliders wired to ``draw(fig, **params)``; see the module docstring.

    Parameters
    ----------
    draw:
        Called as ``draw(fig, **values)`` with a fresh, empty :class:`matplotlib.figure.Figure`.
    figsize, dpi:
        Size of each picture in inches, and CSS pixels per inch (72: a 10 pt label is 10 px).
    pixel_ratio:
        Pictures are drawn with ``pixel_ratio`` image pixels per CSS pixel (2: sharp on phones and
        high-density screens).
    narrow:
        Also draw every picture in a narrow layout (``NARROW_WIDTH_IN`` wide, side-by-side panels
        made with ``fig.subplots(1, n)`` stacked in one column), which the static twin shows on
        narrow screens.  Default: when ``figsize`` is wider than the narrow layout.
    title:
        Optional caption shown above the sliders.
    **sliders:
        One :class:`Slider` per keyword argument of ``draw``.
    """

    LAYOUTS = ("wide", "narrow")

    def __init__(self, draw: Callable, *, figsize=(6.4, 3.4), dpi: int = 72, pixel_ratio: float = 2,
                 narrow: bool | None = None, title: str = "", **sliders: Slider):
        if not callable(draw):
            raise ValueError("draw must be callable as draw(fig, **values)")
        if not sliders:
            raise ValueError("sliders must hold at least one slider (keyword arguments name=Slider), got none")
        for name, s in sliders.items():
            if not isinstance(s, Slider):
                raise ValueError(f"slider {name!r} must be a Slider (use log_slider, linear_slider or "
                                 f"choice_slider), got {type(s).__name__}")
        n = math.prod(len(s.values) for s in sliders.values())
        if n > MAX_FRAMES:
            raise ValueError(f"sliders must span at most {MAX_FRAMES} combinations (the frames of the "
                             f"static twin), got {n}: use fewer grid values")
        if len(figsize) != 2 or not all(isinstance(x, (int, float)) and 0 < x < 50 for x in figsize):
            raise ValueError(f"figsize must be (width, height) in inches, each in (0, 50), got {figsize!r}")
        pixel_ratio = _checks.real_scalar(pixel_ratio, "pixel_ratio", low=1, high=4)
        self.draw = draw
        self.sliders = dict(sliders)
        self.figsize = tuple(float(x) for x in figsize)
        self.dpi = dpi
        self.pixel_ratio = pixel_ratio
        self.narrow = self.figsize[0] > 1.15 * NARROW_WIDTH_IN if narrow is None else bool(narrow)
        self.title = title
        self.last_redraw_s: float | None = None
        self.median_redraw_s: float | None = None
        self.median_live_redraw_s: float | None = None
        #: smallest font size (points) in the last picture drawn, per layout
        self.smallest_font_pt: dict = {}
        #: size in CSS pixels (width, height) of the last picture drawn, per layout
        self.css_size: dict = {}
        self._positions = {}
        self._widget = None

    # ---------------------------------------------------------------- drawing
    def render(self, fast: bool = False, layout: str = "wide", **values) -> bytes:
        """Draw one picture for the given slider values; return PNG bytes.

        The PNG has ``pixel_ratio`` pixels per CSS pixel.  ``layout="narrow"`` draws the narrow
        layout (see the class docstring).  Pictures are laid out by matplotlib's constrained layout,
        which costs about as much as the drawing itself.  With ``fast=True`` (what the live widget
        uses) the axes positions found by the first full layout are reused, so a slider move only
        draws.
        """
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        _checks.one_of(layout, "layout", self.LAYOUTS)
        params = {name: s.value for name, s in self.sliders.items()}
        unknown = set(values) - set(params)
        if unknown:
            raise ValueError(f"values must name sliders of this explorer {sorted(params)}, "
                             f"got unknown slider(s) {sorted(unknown)}")
        params.update(values)
        t0 = time.perf_counter()
        positions = self._positions.get(layout)
        reuse = fast and positions is not None
        rc = {"font.size": NARROW_FONT_PT} if layout == "narrow" else {}
        with matplotlib.rc_context(rc):
            fig = Figure(figsize=self.figsize, dpi=self.dpi, layout=None if reuse else "constrained")
            FigureCanvasAgg(fig)
            stacked = _stack_side_by_side(fig) if layout == "narrow" else None
            self.draw(fig, **params)
            if stacked is not None:
                w, h = self.figsize
                height = h * 0.85 * stacked["panels"] if stacked["panels"] else h * 1.1
                fig.set_size_inches(NARROW_WIDTH_IN, height)
                _enlarge_small_text(fig, NARROW_MIN_FONT_PT)
            if reuse and len(fig.axes) == len(positions):
                for ax, pos in zip(fig.axes, positions):
                    ax.set_position(pos)
            elif reuse:  # the drawing made a different set of axes: lay it out properly
                fig.set_layout_engine("constrained")
            png = _palette_png(fig, self.dpi * self.pixel_ratio)
        if not reuse:
            self._positions[layout] = [ax.get_position() for ax in fig.axes]
        w, h = fig.get_size_inches()
        self.css_size[layout] = (round(w * self.dpi), round(h * self.dpi))
        self.smallest_font_pt[layout] = _smallest_font_pt(fig)
        self.last_redraw_s = time.perf_counter() - t0
        return png

    def frames(self, layout: str = "wide") -> dict:
        """Every slider combination → PNG bytes, keyed by ``"i_j_..."`` slider indices."""
        names = list(self.sliders)
        grids = [range(len(self.sliders[n].values)) for n in names]
        out = {}
        times = []
        fonts = []
        for idx in itertools.product(*grids):
            vals = {n: self.sliders[n].values[i] for n, i in zip(names, idx)}
            out["_".join(map(str, idx))] = self.render(layout=layout, **vals)
            times.append(self.last_redraw_s)
            fonts.append(self.smallest_font_pt[layout])
        self.smallest_font_pt[layout] = float(np.nanmin(fonts)) if not np.all(np.isnan(fonts)) \
            else float("nan")
        if layout == "wide":
            #: median seconds to draw one frame with a full layout, from the last frames()
            self.median_redraw_s = float(np.median(times))
            # what a live slider move costs (layout reused): time a few frames that way too
            fast = []
            for idx in list(itertools.product(*grids))[:3]:
                self.render(fast=True, **{n: self.sliders[n].values[i] for n, i in zip(names, idx)})
                fast.append(self.last_redraw_s)
            #: median seconds per live redraw (``render(fast=True)``)
            self.median_live_redraw_s = float(np.median(fast))
        return out

    # ---------------------------------------------------------------- live widget
    def widget(self):
        """The live ipywidgets version: one slider per parameter and the picture."""
        import ipywidgets as W

        controls = {}
        for name, s in self.sliders.items():
            desc = s.description or name
            controls[name] = W.SelectionSlider(
                options=list(zip(s.labels, s.values)), value=s.value, description=desc,
                continuous_update=False, style={"description_width": "initial"},
                layout=W.Layout(width="min(420px, 100%)"))
        first = self.render()
        # shown at its CSS size: pixel_ratio image pixels per CSS pixel keep it sharp
        image = W.Image(value=first, format="png", width=self.css_size["wide"][0],
                        layout=W.Layout(max_width="100%", height="auto"))

        def redraw(_change=None):
            image.value = self.render(fast=True, **{n: c.value for n, c in controls.items()})

        for c in controls.values():
            c.observe(redraw, names="value")
        children = ([W.HTML(f"<b>{html.escape(self.title)}</b>")] if self.title else []) + \
            list(controls.values()) + [image]
        box = W.VBox(children)
        box.controls = controls  # for tests and advanced users
        box.image = image
        self._widget = box
        return box

    # ---------------------------------------------------------------- static twin
    def static_html(self) -> str:
        """Self-contained HTML: pre-rendered frames and an inline script swapping them.

        The frames travel inline, base64 PNG, in ``<script class="ssmbook-explorer-data">`` as
        ``{"params": [{"name", "labels"}], "frames": {key: png}, "size": [w, h], "font_px": f,
        "narrow": {"frames": ..., "size": ...}}`` (``narrow`` only when the narrow layout is drawn;
        sizes in CSS pixels, ``font_px`` the smallest label at that size).  A build step may move
        the frames into files: it then stores file names and sets ``"files": true``, and the
        script loads them from the folder of the first picture's ``src``.
        """
        uid = "ssmx-" + uuid.uuid4().hex[:10]
        names = list(self.sliders)
        b64 = lambda fr: {k: base64.b64encode(v).decode("ascii") for k, v in fr.items()}  # noqa: E731
        frames = b64(self.frames("wide"))
        size = list(self.css_size["wide"])
        font_px = self.smallest_font_pt["wide"] * self.dpi / 72
        start = "_".join(str(self.sliders[n].index) for n in names)
        data = {"params": [{"name": n, "labels": list(self.sliders[n].labels),
                            "description": self.sliders[n].description or n} for n in names],
                "frames": frames, "size": size, "font_px": round(font_px, 2)}
        if self.narrow:
            nf = b64(self.frames("narrow"))
            data["narrow"] = {"frames": nf, "size": list(self.css_size["narrow"]),
                              "font_px": round(self.smallest_font_pt["narrow"] * self.dpi / 72, 2)}
        rows = []
        for n in names:
            s = self.sliders[n]
            desc = html.escape(s.description or n)
            rows.append(
                f'<label style="display:flex;align-items:center;gap:.6em;margin:.15em 0">'
                f'<span style="min-width:4em">{desc}</span>'
                f'<input type="range" min="0" max="{len(s.values) - 1}" step="1" value="{s.index}" '
                f'data-param="{html.escape(n)}" aria-label="{desc}" '
                f'style="flex:1 1 auto;min-width:0;max-width:260px">'
                f'<output class="ssmbook-explorer-value" data-param="{html.escape(n)}">'
                f'{html.escape(s.labels[s.index])}</output></label>')
        title = f'<div style="font-weight:bold">{html.escape(self.title)}</div>' if self.title else ""
        alt_base = html.escape(self.title or "Explorer picture")
        alt = alt_base + " for " + ", ".join(
            f"{self.sliders[n].description or n} = {self.sliders[n].labels[self.sliders[n].index]}"
            for n in names)
        script = (
            "(function(){var root=document.getElementById('%s');"
            "var data=JSON.parse(root.querySelector('script.ssmbook-explorer-data').textContent);"
            "var img=root.querySelector('img.ssmbook-explorer-frame');"
            "var inputs=root.querySelectorAll('input[type=range]');"
            "var outs=root.querySelectorAll('output');"
            "var dir=(img.getAttribute('src')||'').replace(/[^\\/]*$/,'');"
            "var altBase=img.getAttribute('data-alt-base')||'';"
            "function pick(){return data.narrow&&root.clientWidth>0&&"
            "root.clientWidth<0.8*data.size[0]?data.narrow:data;}"
            "function update(){var key=[],say=[];for(var i=0;i<inputs.length;i++){var k=+inputs[i].value;"
            "key.push(k);outs[i].textContent=data.params[i].labels[k];"
            "say.push(data.params[i].description+' = '+data.params[i].labels[k]);}"
            "key=key.join('_');var lay=pick();var f=lay.frames[key];if(!f)return;"
            "var src=data.files?dir+f:'data:image/png;base64,'+f;"
            "if(img.getAttribute('src')!==src)img.setAttribute('src',src);"
            "img.width=lay.size[0];img.height=lay.size[1];img.style.maxWidth=lay.size[0]+'px';"
            "img.alt=altBase+' for '+say.join(', ');root.setAttribute('data-frame',key);"
            "root.setAttribute('data-layout',lay===data?'wide':'narrow');}"
            "for(var i=0;i<inputs.length;i++){inputs[i].addEventListener('input',update);"
            "inputs[i].addEventListener('change',update);}"
            "window.addEventListener('resize',update);update();})();" % uid)
        payload = json.dumps(data).replace("</", "<\\/")  # no "</script>" inside the JSON
        return (
            f'<div class="ssmbook-explorer" id="{uid}" data-frame="{start}" '
            f'data-median-redraw-ms="{1000 * self.median_redraw_s:.1f}" '
            f'data-live-redraw-ms="{1000 * self.median_live_redraw_s:.1f}" data-layout="wide" '
            f'style="border:1px solid #ddd;border-radius:6px;padding:.5em;margin:.5em 0;'
            f'max-width:100%;box-sizing:border-box">'
            f'{title}<div class="ssmbook-explorer-controls">{"".join(rows)}</div>'
            f'<img class="ssmbook-explorer-frame" alt="{alt}" data-alt-base="{alt_base}" '
            f'width="{size[0]}" height="{size[1]}" '
            f'style="display:block;width:100%;max-width:{size[0]}px;height:auto" '
            f'src="data:image/png;base64,{frames[start]}">'
            f'<script type="application/json" class="ssmbook-explorer-data">'
            f'{payload}</script>'
            f'<script>{script}</script>'
            f'<div style="font-size:80%;color:#666">Static version: every slider position was drawn when '
            f'the book was built. Open the chapter in Colab or Jupyter for the live explorer.</div></div>')

    # ---------------------------------------------------------------- display
    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": repr(self), "text/html": self.static_html()}
        try:
            w = self.widget()
            wb = w._repr_mimebundle_(include=include, exclude=exclude)
        except Exception:  # no live front end (e.g. plain python): the static twin is enough
            wb = None
        if wb:
            bundle.update({k: v for k, v in wb.items() if k != "text/plain"})
        return bundle

    def __repr__(self):
        parts = ", ".join(f"{n}={s.value!r}" for n, s in self.sliders.items())
        return f"Explorer({getattr(self.draw, '__name__', 'draw')}: {parts})"
