#!/usr/bin/env bash
# Installs Debian's chromium, chromium-driver and poppler-utils for the browser and PDF tests when missing.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ]; then
  echo "missing ${need[*]}: install them with apt-get (browser/PDF tests will be skipped)" >&2
  exit 0
fi
echo "installing ${need[*]} ..." >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" fonts-dejavu-core) >/dev/null 2>&1 \
  || echo "could not install ${need[*]}; browser/PDF tests will be skipped" >&2
exit 0
