#!/usr/bin/env bash
# Create (or update) a virtualenv with skiff, every builtin and contrib plugin, and extras.
# usage: scripts/venv.sh VENV_DIR [editable] [extra pip requirement...]
set -euo pipefail
venv=$1; shift
mode=${1:-copy}; shift || true
top=$(cd "$(dirname "$0")/.." && pwd)
python=${SKIFF_PYTHON:-/usr/bin/python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "-----> Creating virtualenv $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
dists=("$top")
for d in "$top"/plugins/builtin/*/ "$top"/plugins/contrib/*/; do
  [ -f "$d/setup.cfg" ] && dists+=("${d%/}")
done
stamp="$venv/.skiff-stamp"
want=$(cd "$top" && { echo "$mode $*"; find setup.cfg pyproject.toml VERSION plugins -name setup.cfg -o -name pyproject.toml -o -name VERSION | sort | xargs cat; } | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "-----> Installing skiff and its plugins into $venv"
if [ "$mode" = editable ]; then
  args=(); for d in "${dists[@]}"; do args+=(-e "$d"); done
  "${pip[@]}" install "${args[@]}" "$@"
else
  "${pip[@]}" install "${dists[@]}" "$@"
fi
echo "$want" > "$stamp"
