"""Sphinx extension for the book's web pages (registered in _config.yml, sphinx.local_extensions).

* Explorer frames as image files loaded on demand.  An explorer's static twin
  (``ssmbook.widgets.Explorer.static_html``) carries every frame inline as base64 PNG, so a
  notebook output stands alone (Jupyter, Colab, the Colab converter).  In the web pages that would
  put every frame of every explorer in the page's HTML.  Here, when a page is written, each frame is
  saved once under ``_images/explorers/`` (named by a hash of its content) and the page's
  ``script.ssmbook-explorer-data`` JSON keeps only the file names, with ``"files": true``; the
  explorer's inline script then loads a frame from that folder when a slider reaches it.
* One published URL: ``html_baseurl`` (``html.baseurl`` in _config.yml) also gives the OpenGraph
  site URL and the URL prefix of the 404 page's links, unless those are set on their own.
* No source maps: the themes ship ``.map`` files for their scripts and styles (about 3.4 MB,
  a debugging aid no reader loads); they are removed from the built site.
* No ipywidgets state: the pages show the explorers' static twins, never the live widgets, so the
  widget state that execution stores in a notebook's metadata (and myst-nb would embed in every
  page) is dropped.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import posixpath
import re
from pathlib import Path
from urllib.parse import urlparse

from docutils import nodes

FOLDER = "_images/explorers"

_DATA = re.compile(
    r'(<script type="application/json" class="ssmbook-explorer-data">)(.*?)(</script>)',
    re.DOTALL,
)
_FIRST = re.compile(
    r'(<img class="ssmbook-explorer-frame"[^>]*?\ssrc=")data:image/png;base64,([^"]+)(")'
)


def _save(outdir: Path, b64: str, cache: dict) -> str:
    """Write one frame (base64 PNG) as an image file; return its file name."""
    if b64 in cache:
        return cache[b64]
    # The explorer draws 8-bit palette PNGs (about 20 kB a frame at 2x).  Re-encoded as lossless
    # WebP (Pillow, which matplotlib requires) a frame is about 19 % smaller, pixel for pixel the
    # same, for about 20 ms of build time; lossy WebP at quality 90 came out larger than the PNG.
    from PIL import Image

    raw = base64.b64decode(b64)
    name = hashlib.sha1(raw).hexdigest()[:16] + ".webp"
    path = outdir / FOLDER / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(io.BytesIO(raw)) as im:
            im.convert(
                "RGBA" if "transparency" in im.info or im.mode == "RGBA" else "RGB"
            ).save(path, "WEBP", lossless=True, method=4)
    cache[b64] = name
    return name


def externalize(html: str, outdir: Path, folder_url: str) -> str:
    """Move the inline frames of every explorer in ``html`` into files under ``outdir``.

    ``folder_url`` is the URL of ``_images/explorers`` relative to the page.
    """
    cache: dict = {}

    def data_block(m):
        data = json.loads(m.group(2))
        if data.get("files"):
            return m.group(0)
        for layout in (data, data.get("narrow")):
            if layout:
                layout["frames"] = {
                    k: _save(outdir, v, cache) for k, v in layout["frames"].items()
                }
        data["files"] = True
        return m.group(1) + json.dumps(data).replace("</", "<\\/") + m.group(3)

    def first_frame(m):
        name = _save(outdir, m.group(2), cache)
        return (
            m.group(1)
            + f"{folder_url}/{name}"
            + m.group(3)
            + ' loading="lazy" decoding="async"'
        )

    html = _DATA.sub(data_block, html)
    return _FIRST.sub(first_frame, html)


def _externalize_frames(app, doctree, docname):
    if app.builder.format != "html":
        return
    page_dir = posixpath.dirname(app.builder.get_target_uri(docname))
    folder_url = posixpath.relpath(FOLDER, page_dir or ".")
    outdir = Path(app.outdir)
    for node in list(doctree.findall(nodes.raw)):
        if "html" not in node.get("format", "").split():
            continue
        text = node.astext()
        if "ssmbook-explorer-data" not in text:
            continue
        new = nodes.raw(
            "", externalize(text, outdir, folder_url), format=node["format"]
        )
        new["classes"] = list(node.get("classes", []))
        node.replace_self(new)


def _drop_widget_state(app, doctree):
    metadata = getattr(app.env, "nb_metadata", None)
    if not metadata:
        return
    js_files = metadata.get(app.env.docname, {}).get("js_files", {})
    for key in [
        k for k in js_files if k == "ipywidgets_state" or k.startswith("ipywidgets_")
    ]:
        del js_files[key]


def _derive_urls(app, config):
    base = config.html_baseurl or ""
    if not base:
        return
    if not base.endswith("/"):
        base += "/"
        config.html_baseurl = base
    if "ogp_site_url" in config and not config.ogp_site_url:
        config.ogp_site_url = base
    if "notfound_urls_prefix" in config and not app.config._raw_config.get(
        "notfound_urls_prefix"
    ):
        config.notfound_urls_prefix = urlparse(base).path or "/"


def _drop_source_maps(app, exception):
    """Leave out what no browser loads: the themes' source maps and the book theme's message
    catalogs (.po/.mo, read by Sphinx at build time, copied to _static/locales only by accident)."""
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    for pattern in ("*.map", "locales/**/*.po", "locales/**/*.mo"):
        for path in static.glob(pattern) if "**" in pattern else static.rglob(pattern):
            path.unlink()


def setup(app):
    # before the extensions that read these values check them (default priority 500)
    app.connect("config-inited", _derive_urls, priority=400)
    app.connect("doctree-read", _drop_widget_state)
    app.connect("doctree-resolved", _externalize_frames)
    app.connect("build-finished", _drop_source_maps)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
