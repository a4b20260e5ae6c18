"""Sphinx extension: the Colab launch button opens the converted notebook on the Colab branch.

sphinx-book-theme builds the Colab link from the repository's branch (``repository.branch``, the
branch the sources and the setup cell's ``pip install`` come from) and the page's path:
``{colab_url}/github/{org}/{repo}/blob/{branch}/book/NN_name.ipynb``.  Colab cannot render the MyST
of the source notebooks, so the book publishes plain-Markdown copies (``make colab``,
scripts/colab_notebooks.py) on their own branch, named by ``launch_buttons.colab_branch`` in
_config.yml.  This hook runs after the theme has built its buttons and points the Colab one at that
branch; the repository, issue and download buttons keep the source branch.
"""
from __future__ import annotations

import re


def _retarget(buttons, branch):
    for b in buttons:
        if isinstance(b, dict):
            if b.get("text") == "Colab" and isinstance(b.get("url"), str):
                b["url"] = re.sub(r"(/github/[^/]+/[^/]+/blob/)[^/]+/", rf"\g<1>{branch}/", b["url"], count=1)
            _retarget(b.get("buttons") or [], branch)


def colab_branch_links(app, pagename, templatename, context, doctree):
    branch = (app.config.html_theme_options.get("launch_buttons") or {}).get("colab_branch")
    if branch and "header_buttons" in context:
        _retarget(context["header_buttons"], branch)


def setup(app):
    # after sphinx-book-theme's add_launch_buttons (priority 501)
    app.connect("html-page-context", colab_branch_links, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
