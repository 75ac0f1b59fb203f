#!/usr/bin/env bash
# Fetches the GraphiQL explorer's browser files from the npm registry, at the
# pinned versions below, into internal/server/graphiql/assets, where the
# binary embeds them (go:embed): the explorer at / in development then needs
# no network. Each file is stored gzipped (gzip -9n: no name, no time, so
# the same versions give the same bytes); the server sends it as it is to
# browsers that accept gzip. Each package's license is kept beside its files.
#
#   scripts/update-graphiql.sh      (needs npm, tar, gzip, sha256sum)
#
# To update, change the versions, run the script, and check the explorer
# with browser/run.sh. GraphiQL 3 is the last major version with a build
# that runs without a bundler (a UMD script that finds React and ReactDOM
# as globals); React 18 is the last with UMD builds of its own.
set -euo pipefail

GRAPHIQL_VERSION=3.8.3
REACT_VERSION=18.3.1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$ROOT/internal/server/graphiql/assets"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/meshauth-graphiql.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

for tool in npm tar gzip sha256sum; do
  command -v "$tool" >/dev/null || { echo "update-graphiql: $tool is required" >&2; exit 1; }
done

# npm pack checks each tarball against the registry's integrity hash.
(cd "$TMP" && npm pack --silent "graphiql@$GRAPHIQL_VERSION" "react@$REACT_VERSION" "react-dom@$REACT_VERSION" >/dev/null)
for pkg in "graphiql-$GRAPHIQL_VERSION" "react-$REACT_VERSION" "react-dom-$REACT_VERSION"; do
  mkdir -p "$TMP/$pkg"
  tar -xzf "$TMP/$pkg.tgz" -C "$TMP/$pkg"
done

rm -rf "$OUT"
mkdir -p "$OUT"
put() { # put SOURCE NAME: SOURCE gzipped as assets/NAME.gz
  gzip -9n -c "$1" >"$OUT/$2.gz"
}
put "$TMP/graphiql-$GRAPHIQL_VERSION/package/graphiql.min.js" graphiql.min.js
put "$TMP/graphiql-$GRAPHIQL_VERSION/package/graphiql.min.css" graphiql.min.css
put "$TMP/react-$REACT_VERSION/package/umd/react.production.min.js" react.production.min.js
put "$TMP/react-dom-$REACT_VERSION/package/umd/react-dom.production.min.js" react-dom.production.min.js
cp "$TMP/graphiql-$GRAPHIQL_VERSION/package/LICENSE" "$OUT/LICENSE.graphiql"
cp "$TMP/react-$REACT_VERSION/package/LICENSE" "$OUT/LICENSE.react"
cp "$TMP/react-dom-$REACT_VERSION/package/LICENSE" "$OUT/LICENSE.react-dom"

{
  echo "# The npm packages these files come from (scripts/update-graphiql.sh)."
  echo "graphiql@$GRAPHIQL_VERSION react@$REACT_VERSION react-dom@$REACT_VERSION"
  echo "# sha256 of each file as the package ships it, before gzip:"
  (cd "$TMP" && sha256sum "graphiql-$GRAPHIQL_VERSION/package/graphiql.min.js" "graphiql-$GRAPHIQL_VERSION/package/graphiql.min.css" \
    "react-$REACT_VERSION/package/umd/react.production.min.js" "react-dom-$REACT_VERSION/package/umd/react-dom.production.min.js")
} >"$OUT/VERSIONS"

echo "update-graphiql: graphiql@$GRAPHIQL_VERSION, react@$REACT_VERSION and react-dom@$REACT_VERSION in ${OUT#"$ROOT"/} ($(du -sh "$OUT" | cut -f1))"
