#!/usr/bin/env bash
# Fetch the front-end libraries the slides and the printable book use (from the npm registry) into
# _build/vendor, so that decks and the print page render math and slides with no CDN at view time.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=_build/vendor
[ -f "$dest/.done" ] && exit 0
command -v npm >/dev/null || { echo "npm is needed for slides/print (Debian: apt-get install npm)"; exit 1; }
rm -rf "$dest" && mkdir -p "$dest/tmp"
(cd "$dest/tmp" && npm pack --silent reveal.js@4.0.2 mathjax@3.2.2 >/dev/null)
mkdir -p "$dest/reveal.js" "$dest/mathjax"
tar xzf "$dest/tmp/reveal.js-4.0.2.tgz" -C "$dest/reveal.js" --strip-components=1 package/dist package/plugin
tar xzf "$dest/tmp/mathjax-3.2.2.tgz" -C "$dest/mathjax" --strip-components=2 package/es5
rm -rf "$dest/tmp"
# the part of MathJax the book's pages load (html_static_path in _config.yml)
mkdir -p "$dest/static/mathjax/output/chtml/fonts"
cp "$dest/mathjax/tex-chtml.js" "$dest/static/mathjax/"
cp -r "$dest/mathjax/output/chtml/fonts/woff-v2" "$dest/static/mathjax/output/chtml/fonts/"
touch "$dest/.done"
