#!/usr/bin/env bash
# Create (or update) a virtualenv with skiff, every builtin and contrib plugin, and extras.
# usage: scripts/venv.sh VENV_DIR [editable] [extra pip requirement...]
#        SKIFF_VENV_PRINT=1 scripts/venv.sh ...   prints the distributions it installs, one a line
set -euo pipefail
venv=$1; shift
mode=${1:-copy}; shift || true
top=$(cd "$(dirname "$0")/.." && pwd)
python=${SKIFF_PYTHON:-/usr/bin/python3}
# the extras a server needs (pip's DIST[EXTRA]): the services toolkit's s3 extra (boto3), so
# backups to s3:// destinations work on an installed server, not only in the test venv
extras_of() {
  case "$1" in
    "$top"/plugins/contrib/services) echo "[s3]" ;;
    *) echo "" ;;
  esac
}
dists=("$top")
for d in "$top"/plugins/builtin/*/ "$top"/plugins/contrib/*/; do
  [ -f "$d/setup.cfg" ] && dists+=("${d%/}$(extras_of "${d%/}")")
done
if [ -n "${SKIFF_VENV_PRINT:-}" ]; then
  printf '%s\n' "${dists[@]}"
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "-----> Creating virtualenv $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
stamp="$venv/.skiff-stamp"
want=$(cd "$top" && { echo "$mode $* ${dists[*]}"; find setup.cfg pyproject.toml VERSION plugins -name setup.cfg -o -name pyproject.toml -o -name VERSION | sort | xargs cat; } | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "-----> Installing skiff and its plugins into $venv"
# pip cannot take a local path with extras beside other paths that depend on it (it then looks
# the distribution up in the index), so the paths go in plain and the extras by name afterwards
paths=(); extras=()
for d in "${dists[@]}"; do
  paths+=("${d%%\[*}")
  if [ "$d" != "${d%%\[*}" ]; then
    name=$(sed -n 's/^name *= *//p' "${d%%\[*}/setup.cfg" | head -n 1)
    extras+=("$name[${d#*\[}")
  fi
done
if [ "$mode" = editable ]; then
  args=(); for d in "${paths[@]}"; do args+=(-e "$d"); done
  "${pip[@]}" install "${args[@]}" "$@"
else
  "${pip[@]}" install "${paths[@]}" "$@"
fi
if [ ${#extras[@]} -gt 0 ]; then
  "${pip[@]}" install "${extras[@]}"
fi
echo "$want" > "$stamp"
