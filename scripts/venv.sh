#!/usr/bin/env bash
# Make sure .venv exists on Python 3.11+ and holds the pinned requirements.
#
#   scripts/venv.sh runtime   requirements.txt           (make run)
#   scripts/venv.sh dev       + requirements-dev.txt     (make test, make bench)
#
# pip runs only when the requirements files differ from the last successful install: a stamp in
# .venv records their hash, so a second `make run` starts in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:?usage: scripts/venv.sh runtime|dev}
venv=${VENV:-.venv}

case $kind in
  runtime) files=(requirements.txt) ;;
  dev) files=(requirements.txt requirements-dev.txt) ;;
  *) echo "usage: scripts/venv.sh runtime|dev" >&2; exit 2 ;;
esac

is_modern_python() {
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
  if [[ -n ${PYTHON:-} ]]; then
    # An explicit choice is never silently replaced by another interpreter.
    if is_modern_python "$PYTHON"; then "$PYTHON" -c 'import sys; print(sys.executable)'; return; fi
    echo "error: PYTHON=$PYTHON is not a working Python 3.11 or newer" >&2
    return 1
  fi
  local candidate
  for candidate in python3 python3.13 python3.12 python3.11 python; do
    # pyenv shims exist for versions that are not active and fail when run: is_modern_python skips them.
    if command -v "$candidate" >/dev/null 2>&1 && is_modern_python "$candidate"; then
      "$candidate" -c 'import sys; print(sys.executable)'
      return
    fi
  done
  echo "error: no Python 3.11 or newer on PATH (tried python3, python3.13, python3.12, python3.11, python)." >&2
  echo "       Install one, or point PYTHON at it: make run PYTHON=/path/to/python3.11" >&2
  return 1
}

if [[ -x $venv/bin/python ]] && is_modern_python "$venv/bin/python" && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  :
else
  if [[ -e $venv ]]; then
    echo "==> $venv is unusable (moved, or made by an older Python): recreating it"
    rm -rf -- "$venv"
  fi
  python=$(find_python)
  echo "==> creating $venv with $python ($("$python" -c 'import platform; print(platform.python_version())'))"
  if ! "$python" -m venv "$venv"; then
    echo "error: '$python -m venv' failed; on Debian/Ubuntu install the python3-venv package" >&2
    exit 1
  fi
fi

want=$(cat "${files[@]}" | sha256sum | cut -d' ' -f1)
stamp=$venv/.requirements-$kind.sha256
if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
  exit 0
fi

echo "==> installing ${files[*]} into $venv (quiet; errors are shown)"
requirement_args=()
for file in "${files[@]}"; do requirement_args+=(-r "$file"); done
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --progress-bar off "${requirement_args[@]}"
echo "$want" >"$stamp"
# A dev install includes the runtime requirements, so it also satisfies `make run`.
if [[ $kind == dev ]]; then
  cat requirements.txt | sha256sum | cut -d' ' -f1 >"$venv/.requirements-runtime.sha256"
fi
