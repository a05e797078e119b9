#!/usr/bin/env bash
# Screenshots of the built documentation site in headless Chromium (Debian's `chromium`):
# the home page, API pages, user guides, a notebook and the demo, as PNGs in OUT (default: site-shots/).
#
#   apt-get update && apt-get install -y chromium     # once
#   mkdocs build --strict && bash scripts/screenshots.sh [SITE_DIR] [OUT]
#
# Look at them: nothing clipped, code readable, the figure sharp, the API signatures intact.
set -euo pipefail
cd "$(dirname "$0")/.."
site="${1:-site}"
out="${2:-site-shots}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  echo "screenshots.sh: needs Chromium: apt-get install -y chromium" >&2
  exit 1
fi
if [ ! -f "$site/index.html" ]; then
  echo "screenshots.sh: no built site in $site/ (run: mkdocs build --strict)" >&2
  exit 1
fi
mkdir -p "$out"
root="$(cd "$site" && pwd)"
shoot() {  # name, page path inside the site, height
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size="1400,$3" --virtual-time-budget=5000 \
    --screenshot="$out/$1.png" "file://$root/$2" 2>/dev/null
  echo "$out/$1.png"
}
shoot home index.html 1800
shoot api-transforms api/transforms/index.html 2200
shoot notebook-quickstart notebooks/01_quickstart/index.html 2200
shoot migration-torch migration/torch/index.html 1800
shoot demo demo/index.html 1800
shoot api-prox api/prox/index.html 2200
shoot guide-flat guide/flat/index.html 2600
shoot guide-errors guide/errors/index.html 2600
