#!/usr/bin/env bash
# Regenerates cmyk.jpg, a 40×30 CMYK JPEG (as print workflows and some cameras write),
# for the test that nst reads such files. Needs ImageMagick.
set -euo pipefail
cd "$(dirname "$0")"
convert -size 40x30 gradient:orange-navy -colorspace CMYK -quality 90 cmyk.jpg
