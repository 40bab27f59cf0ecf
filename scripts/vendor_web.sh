#!/usr/bin/env bash
# Fetch the review page's vendored JavaScript exactly as pinned in graph/jobs/web/static/vendor/VERSIONS:
# `npm pack NAME@VERSION` (the npm registry's tarball), its sha256 checked, then the one file and the package's
# LICENSE copied beside VERSIONS as FILE and LICENSE.NAME.txt, the file's sha256 checked too.
# To upgrade: change the version and both checksums in VERSIONS (a mismatch stops this script), rerun, commit.
set -euo pipefail
vendor="$(cd "$(dirname "$0")/.." && pwd)/graph/jobs/web/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

grep -v '^#' "$vendor/VERSIONS" | while read -r name version tar_sha file file_sha; do
  [ -n "$name" ] || continue
  (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
  tarball="$work/$(echo "$name" | tr -d '@' | tr '/' '-')-$version.tgz"
  echo "$tar_sha  $tarball" | sha256sum --check --quiet || { echo "$name $version: tarball checksum differs" >&2; exit 1; }
  mkdir -p "$work/$name" && tar -xzf "$tarball" -C "$work/$name"
  echo "$file_sha  $work/$name/package/$file" | sha256sum --check --quiet \
    || { echo "$name $version: $file checksum differs" >&2; exit 1; }
  cp "$work/$name/package/$file" "$vendor/$(basename "$file")"
  cp "$work/$name/package/LICENSE" "$vendor/LICENSE.$name.txt"
  echo "vendored $name $version: $(basename "$file"), LICENSE.$name.txt"
done
