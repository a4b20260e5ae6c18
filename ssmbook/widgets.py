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
            raise ValueError(f"value {self.value!r} is not one of the slider's values {list(self.values)}")
        if not self.labels:
            self.labels = tuple(self.format(v) for v in self.values)

    def format(self, v) -> str:
        if isinstance(v, (int, np.integer)) or isinstance(v, str):
            return str(v)
        return self.fmt.format(v)

    @property
    def index(self) -> int:
        return self.values.index(self.value)


def _grid_default(values, value):
    if value is None:
        return values[len(values) // 2]
    # snap to the nearest grid value
    return min(values, key=lambda v: abs(math.log(v) - math.log(value)) if v > 0 and value > 0 else abs(v - value))


def log_slider(lo: float, hi: float, n: int = 9, value: float | None = None, description: str = "",
               fmt: str = "{:.3g}") -> Slider:
    """A slider over ``n`` log-spaced values from ``lo`` to ``hi`` (both > 0)."""
    if not (lo > 0 and hi > lo):
        raise ValueError(f"log_slider needs 0 < lo < hi, got lo={lo}, hi={hi}")
    if int(n) < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    values = tuple(float(v) for v in np.logspace(math.log10(lo), math.log10(hi), int(n)))
    return Slider(values, _grid_default(values, value), description, "log", fmt)


def linear_slider(lo: float, hi: float, n: int = 9, value: float | None = None, description: str = "",
                  fmt: str = "{:.3g}") -> Slider:
    """A slider over ``n`` evenly spaced values from ``lo`` to ``hi``."""
    if not hi > lo:
        raise ValueError(f"linear_slider needs lo < hi, got lo={lo}, hi={hi}")
    if int(n) < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    values = tuple(float(v) for v in np.linspace(lo, hi, int(n)))
    if value is None:
        value = values[len(values) // 2]
    value = min(values, key=lambda v: abs(v - value))
    return Slider(values, value, description, "linear", fmt)


def choice_slider(values: Sequence, value=None, description: str = "") -> Slider:
    """A slider over the given values (e.g. state sizes ``[1, 2, 4, 8, 16]``)."""
    values = tuple(values)
    if len(values) == 0:
        raise ValueError("values must hold at least one value")
    if value is None:
        value = values[len(values) // 2]
    return Slider(values, value, description, "choice")


class Explorer:
    """Sliders wired to ``draw(fig, **params)``; see the module docstring.

    Parameters
    ----------
    draw:
        Called as ``draw(fig, **values)`` with a fresh, empty :class:`matplotlib.figure.Figure`.
    figsize, dpi:
        Size of each picture.
    title:
        Optional caption shown above the sliders.
    **sliders:
        One :class:`Slider` per keyword argument of ``draw``.
    """

    def __init__(self, draw: Callable, *, figsize=(6.4, 3.4), dpi: int = 72, title: str = "",
                 **sliders: Slider):
        if not callable(draw):
            raise ValueError("draw must be callable as draw(fig, **values)")
        if not sliders:
            raise ValueError("an Explorer needs at least one slider")
        for name, s in sliders.items():
            if not isinstance(s, Slider):
                raise ValueError(f"slider {name!r} must be a Slider (use log_slider, linear_slider or "
                                 f"choice_slider), got {type(s).__name__}")
        n = math.prod(len(s.values) for s in sliders.values())
        if n > MAX_FRAMES:
            raise ValueError(f"the sliders span {n} combinations; the static twin allows at most "
                             f"{MAX_FRAMES}: use fewer grid values")
        self.draw = draw
        self.sliders = dict(sliders)
        self.figsize = figsize
        self.dpi = dpi
        self.title = title
        self.last_redraw_s: float | None = None
        self.median_redraw_s: float | None = None
        self.median_live_redraw_s: float | None = None
        self._positions = None
        self._widget = None

    # ---------------------------------------------------------------- drawing
    def render(self, fast: bool = False, **values) -> bytes:
        """Draw one picture for the given slider values; return PNG bytes.

        Pictures are laid out by matplotlib's constrained layout, which costs about as much as
        the drawing itself.  With ``fast=True`` (what the live widget uses) the axes positions
        found by the first full layout are reused, so a slider move only draws.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        params = {name: s.value for name, s in self.sliders.items()}
        unknown = set(values) - set(params)
        if unknown:
            raise ValueError(f"unknown slider(s) {sorted(unknown)}; this explorer has {sorted(params)}")
        params.update(values)
        t0 = time.perf_counter()
        reuse = fast and self._positions is not None
        fig = Figure(figsize=self.figsize, dpi=self.dpi, layout=None if reuse else "constrained")
        FigureCanvasAgg(fig)
        self.draw(fig, **params)
        if reuse and len(fig.axes) == len(self._positions):
            for ax, pos in zip(fig.axes, self._positions):
                ax.set_position(pos)
        elif reuse:  # the drawing made a different set of axes: lay it out properly
            fig.set_layout_engine("constrained")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self.dpi)
        if not reuse:
            self._positions = [ax.get_position() for ax in fig.axes]
        self.last_redraw_s = time.perf_counter() - t0
        return buf.getvalue()

    def frames(self) -> dict:
        """Every slider combination → PNG bytes, keyed by ``"i_j_..."`` slider indices."""
        names = list(self.sliders)
        grids = [range(len(self.sliders[n].values)) for n in names]
        out = {}
        times = []
        for idx in itertools.product(*grids):
            vals = {n: self.sliders[n].values[i] for n, i in zip(names, idx)}
            out["_".join(map(str, idx))] = self.render(**vals)
            times.append(self.last_redraw_s)
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
                layout=W.Layout(width="420px"))
        image = W.Image(value=self.render(), format="png")

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
        """Self-contained HTML: pre-rendered frames and an inline script swapping them."""
        uid = "ssmx-" + uuid.uuid4().hex[:10]
        names = list(self.sliders)
        frames = {k: base64.b64encode(v).decode("ascii") for k, v in self.frames().items()}
        start = "_".join(str(self.sliders[n].index) for n in names)
        data = {"params": [{"name": n, "labels": list(self.sliders[n].labels)} for n in names],
                "frames": frames}
        rows = []
        for n in names:
            s = self.sliders[n]
            desc = html.escape(s.description or n)
            rows.append(
                f'<label style="display:flex;align-items:center;gap:.6em;margin:.15em 0">'
                f'<span style="min-width:4em">{desc}</span>'
                f'<input type="range" min="0" max="{len(s.values) - 1}" step="1" value="{s.index}" '
                f'data-param="{html.escape(n)}" aria-label="{desc}" style="width:260px">'
                f'<output class="ssmbook-explorer-value" data-param="{html.escape(n)}">'
                f'{html.escape(s.labels[s.index])}</output></label>')
        title = f'<div style="font-weight:bold">{html.escape(self.title)}</div>' if self.title else ""
        script = (
            "(function(){var root=document.getElementById('%s');"
            "var data=JSON.parse(root.querySelector('script.ssmbook-explorer-data').textContent);"
            "var img=root.querySelector('img.ssmbook-explorer-frame');"
            "var inputs=root.querySelectorAll('input[type=range]');"
            "function update(){var key=[];for(var i=0;i<inputs.length;i++){var k=+inputs[i].value;key.push(k);"
            "root.querySelectorAll('output')[i].textContent=data.params[i].labels[k];}"
            "var f=data.frames[key.join('_')];if(f){img.src='data:image/png;base64,'+f;"
            "root.setAttribute('data-frame',key.join('_'));}}"
            "for(var i=0;i<inputs.length;i++){inputs[i].addEventListener('input',update);"
            "inputs[i].addEventListener('change',update);}})();" % uid)
        return (
            f'<div class="ssmbook-explorer" id="{uid}" data-frame="{start}" '
            f'data-median-redraw-ms="{1000 * self.median_redraw_s:.1f}" '
            f'data-live-redraw-ms="{1000 * self.median_live_redraw_s:.1f}" '
            f'style="border:1px solid #ddd;border-radius:6px;padding:.5em;margin:.5em 0">'
            f'{title}<div class="ssmbook-explorer-controls">{"".join(rows)}</div>'
            f'<img class="ssmbook-explorer-frame" alt="explorer figure" style="max-width:100%" '
            f'src="data:image/png;base64,{frames[start]}">'
            f'<script type="application/json" class="ssmbook-explorer-data">{json.dumps(data)}</script>'
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
