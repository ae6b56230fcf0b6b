#!/usr/bin/env bash
# One-time set-up: virtual environment (.venv) with the pinned packages, then Fashion-MNIST
# prepared through tensorflow-datasets. Safe to run again; finished steps are reused.
#
# Two tested sets of exact versions: requirements.txt (Python 3.11, jax 0.10.2) and
# requirements/py312-py313.txt (Python 3.12 and 3.13, jax 0.12). The interpreter picks:
#   bash scripts/setup.sh                                   # python3
#   PYTHON=python3.13 bash scripts/setup.sh                 # another Python
#   PYTHON=python3.13 VENV=.venv-py313 bash scripts/setup.sh  # beside an existing .venv
#
# Data comes from (first that applies): $FVAE_MANUAL_DIR (a folder with the four original
# .gz files); Debian's package dataset-fashion-mnist (installed here with apt-get when we
# are root and it is missing); else tfds downloads it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
python_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
if ! version=$(python_version "$PYTHON" 2>/dev/null); then
  echo "setup: cannot run Python as '$PYTHON'; name an interpreter, e.g. PYTHON=python3.11 bash scripts/setup.sh" >&2
  exit 2
fi
case "$version" in
  3.11) lock=requirements.txt ;;
  3.12 | 3.13) lock=requirements/py312-py313.txt ;;
  *)
    echo "setup: $PYTHON is Python $version, which fvae does not support. Supported: Python 3.11" \
         "(jax 0.10.2, requirements.txt) and Python 3.12 or 3.13 (jax 0.12," \
         "requirements/py312-py313.txt). Choose one, e.g. PYTHON=python3.13 bash scripts/setup.sh" >&2
    exit 2 ;;
esac
if [ -x "$VENV/bin/python" ] && [ "$(python_version "$VENV/bin/python")" != "$version" ]; then
  echo "setup: $VENV holds Python $(python_version "$VENV/bin/python"), not $version: delete it, or set" \
       "up beside it with VENV=.venv-py${version/./} PYTHON=$PYTHON bash scripts/setup.sh" >&2
  exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
echo "setup: Python $version in $VENV with $lock"
# pip, quiet except for real problems: a machine-wide pip.conf that names index folders which do
# not exist makes pip print one "Location ... is ignored" line per package; those lines are dropped.
pip_install() {
  "$VENV/bin/python" -m pip install --quiet "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip_install --upgrade pip
pip_install -r "$lock"
pip_install --no-deps -e .

if [ -z "${FVAE_MANUAL_DIR:-}" ] && [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
      || echo "setup: could not install dataset-fashion-mnist; tfds will try to download instead." >&2
  else
    echo "setup: for offline data run: sudo apt-get install dataset-fashion-mnist" >&2
  fi
fi

"$VENV/bin/python" -m experiments.prepare_data
