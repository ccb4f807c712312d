#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The include half of the layer rule (docs/architecture.md, "Layers"): a file of a layer's library
# includes headers of its own layer and of the layers below it only. The link half is the layer
# checks in src/meson.build. Run by the build (src/meson.build) with the libraries' sources;
# every header under src/ is checked by its directory.
#
# usage: check-includes.sh SRCDIR STAMP FILE...
# Prints each upward include and fails; touches STAMP when there is none.
set -eu
srcdir=$1
stamp=$2
shift 2

# What each directory's files may include, besides their own directory's headers.
allowed() {
        case $1 in
        shared) echo "" ;;
        agent | runtime) echo "shared" ;;
        engine) echo "agent shared" ;;
        core) echo "runtime agent shared" ;;
        image) echo "core runtime agent shared" ;;
        backend) echo "image engine core runtime agent shared" ;;
        server) echo "image core runtime agent shared" ;;
        proxy) echo "core runtime agent shared" ;;
        *) echo "-" ;;
        esac
}

bad=0
check() {
        file=$1
        dir=$(basename "$(dirname "$file")")
        ok=$(allowed "$dir")
        [ "$ok" = "-" ] && return 0
        # "layer/x.h" includes only; the others are the file's own directory or the system's
        for inc in $(sed -n 's/^#include "\([a-z]*\)\/[^"]*".*/\1/p' "$file" | sort -u); do
                case " $dir $ok " in
                *" $inc "*) ;;
                *)
                        echo "$file: includes $inc/, a layer above $dir/ (docs/architecture.md, Layers)" >&2
                        bad=1
                        ;;
                esac
        done
}

for f in "$@"; do
        check "$f"
done
for d in shared agent runtime engine core image backend server proxy; do
        for h in "$srcdir/$d"/*.h; do
                [ -e "$h" ] && check "$h"
        done
done
[ "$bad" = 0 ] || exit 1
touch "$stamp"
