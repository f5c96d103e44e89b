#!/bin/sh
# The Debian packages whose servers the tests start themselves when none is running
# (tests/servers.py), the tools and fonts the export tests read PDFs with (poppler's
# pdftotext/pdftoppm; Noto CJK, which the PDF report embeds when the machine has it), and
# the browser the browser tests drive (chromium, through Playwright: never downloaded).
# Installed when missing and we are root; otherwise say what is missing: those tests
# then skip with the same command, or fail under CI=true.
set -eu
need=""
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  need="$need postgresql"
fi
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || need="$need prometheus"
command -v pdftoppm >/dev/null 2>&1 || need="$need poppler-utils"
[ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need="$need fonts-noto-cjk"
command -v chromium >/dev/null 2>&1 || need="$need chromium"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing test servers:$need"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
else
  echo "missing test servers:$need (install: sudo apt-get install -y$need)" >&2
fi
