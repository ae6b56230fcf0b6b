#!/usr/bin/env bash
# One-time set-up: virtual environment (.venv) with the pinned packages, then Fashion-MNIST
# prepared through tensorflow-datasets. Safe to run again; finished steps are reused.
#
# Data comes from (first that applies): $FVAE_MANUAL_DIR (a folder with the four original
# .gz files); Debian's package dataset-fashion-mnist (installed here with apt-get when we
# are root and it is missing); else tfds downloads it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip, quiet except for real problems: a machine-wide pip.conf that names index folders which do
# not exist makes pip print one "Location ... is ignored" line per package; those lines are dropped.
pip_install() {
  .venv/bin/python -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip_install --upgrade pip
pip_install -r requirements.txt
pip_install --no-deps -e .

if [ -z "${FVAE_MANUAL_DIR:-}" ] && [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
      || echo "setup: could not install dataset-fashion-mnist; tfds will try to download instead." >&2
  else
    echo "setup: for offline data run: sudo apt-get install dataset-fashion-mnist" >&2
  fi
fi

.venv/bin/python -m experiments.prepare_data
