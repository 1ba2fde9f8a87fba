# Sourced by .ci/test: the browser tests drive Debian's Chromium (Playwright with executable_path) and need a CJK
# font so Chinese renders as characters, not boxes. Installed with apt-get when missing and we are root.
if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "noto.*cjk"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium and fonts-noto-cjk (browser tests)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  else
    echo "chromium or a CJK font is missing and apt-get is not available as root: browser tests will skip" >&2
  fi
fi
