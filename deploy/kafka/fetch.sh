#!/usr/bin/env bash
# Resolves Apache Kafka's jars (broker, tools, logging binding; see pom.xml)
# from Maven Central into deploy/kafka/lib/, once. A second run is a no-op
# while lib/ matches pom.xml (the stamp file holds the pom's hash), so
# deploy/setup.sh can call this every time.
#
# Environment:
#   KAFKA_M2_REPO  Maven local repository to use (default: Maven's own, ~/.m2/repository,
#                  so that fresh clones on the same machine reuse the download).
#   KAFKA_FETCH_FORCE=1  refetch even when lib/ looks complete.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib="$here/lib"
stamp="$lib/.fetched-$(sha1sum "$here/pom.xml" | cut -c1-12)"

if [ -f "$stamp" ] && [ "${KAFKA_FETCH_FORCE:-0}" != 1 ]; then
    exit 0
fi

command -v mvn >/dev/null 2>&1 || {
    echo "fetch.sh: mvn not found; install Maven (Debian: apt-get install maven) or run deploy/setup.sh" >&2
    exit 1
}

mvn_args=(-q -B -Dstyle.color=never -f "$here/pom.xml")
if [ -n "${KAFKA_M2_REPO:-}" ]; then
    mvn_args+=("-Dmaven.repo.local=$KAFKA_M2_REPO")
fi

# Maven -q still prints terminal reset codes on stdout; they go to stderr
# with the rest of its output, so this script prints nothing on stdout.
# Copy into a scratch folder and swap it in whole, so an interrupted fetch
# never leaves a lib/ that looks complete but lacks jars.
tmp="$here/lib.partial"
rm -rf "$tmp"
echo "fetch.sh: resolving Kafka jars from Maven Central into $lib" >&2
mvn "${mvn_args[@]}" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" -DoverWriteReleases=true >&2
ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || {
    echo "fetch.sh: Maven finished but no kafka_2.13 jar is in $tmp" >&2
    exit 1
}
touch "$tmp/.fetched-$(sha1sum "$here/pom.xml" | cut -c1-12)"
rm -rf "$lib"
mv "$tmp" "$lib"
echo "fetch.sh: $(ls "$lib"/*.jar | wc -l) jars in $lib" >&2
