#!/usr/bin/env bash
# Make the local services the tests use available when this machine can provide them:
# PostgreSQL on 127.0.0.1:5432 (trust auth, database "test") and Debian's Chromium for the
# browser test. Where either cannot be had, the tests that need it say so and are skipped.
set -u
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start >/dev/null 2>&1 || true
  fi
fi
need=""
command -v chromium >/dev/null || need="chromium"
fc-list 2>/dev/null | grep -qi nanum || need="$need fonts-nanum"   # Hangul glyphs for the Korean page's screenshots
if [ -n "$need" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # shellcheck disable=SC2086
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need) >/dev/null 2>&1 \
    || echo "ensure_services: could not install$need; the browser test may be skipped" >&2
fi
exit 0
