#!/usr/bin/env bash
# Checks, without a Docker daemon, that deploy/docker/Dockerfile's builder
# stage gets everything the build needs: the context its .dockerignore lets
# through, the builder's COPY lines applied to it, then `cargo metadata
# --locked --offline` in the result. The image once could not build (vendor/ was left
# out of the context) and once built without .cargo/config.toml (jemalloc's
# settings), and nothing noticed. Run by .ci/run; `bash scripts/docker-context.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
dockerfile=deploy/docker/Dockerfile
ignore=deploy/docker/Dockerfile.dockerignore
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ctx=$work/context build=$work/build
mkdir -p "$ctx" "$build"

# The .dockerignore is `*` then `!PATH` lines: the context is those paths.
while read -r line; do
    case "$line" in
    '' | '#'* | '*') ;;
    '!'*) cp -r "${line#!}" "$ctx/" ;;
    *)
        echo "$ignore: a line this check does not understand: $line" >&2
        exit 1
        ;;
    esac
done <"$ignore"

# COPY lines of the first stage (the builder), sources read from the context.
awk '/^FROM /{n++} n==1 && /^COPY /{$1=""; print}' "$dockerfile" | while read -r -a args; do
    dest=${args[-1]}
    unset 'args[-1]'
    for src in "${args[@]}"; do
        if [ ! -e "$ctx/$src" ]; then
            echo "$dockerfile: COPY $src: not in the build context ($ignore)" >&2
            exit 1
        fi
        if [ -d "$ctx/$src" ]; then
            mkdir -p "$build/$dest"
            cp -r "$ctx/$src/." "$build/$dest/"
        elif [[ $dest == */ ]]; then
            mkdir -p "$build/$dest"
            cp "$ctx/$src" "$build/$dest"
        else
            mkdir -p "$(dirname "$build/$dest")"
            cp "$ctx/$src" "$build/$dest"
        fi
    done
done

# What the build reads beyond the package's sources: a missing one builds a
# different binary rather than failing.
for needed in .cargo/config.toml; do
    if [ ! -e "$build/$needed" ]; then
        echo "$dockerfile: the builder stage lacks $needed" >&2
        exit 1
    fi
done
# Cargo resolves the package there: every [patch] path, the lock file as it
# is. (A full `cargo check` there takes 6 minutes more: path crates build
# anew in another directory.)
(cd "$build" && cargo metadata --locked --offline --format-version 1 \
    --filter-platform "$(rustc -vV | sed -n 's/^host: //p')" >/dev/null)
echo "docker build context: the builder stage has what the build needs"
