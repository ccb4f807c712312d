#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Links the musl-built CLI as a static PIE (src/meson.build says why musl).
#   musl-link.sh MUSL_GCC --check            exit 0 when musl's static-PIE start file is there
#   musl-link.sh MUSL_GCC OUTPUT INPUT...    link INPUT (objects, archives) into OUTPUT
# Debian's musl-gcc specs know -static but not -static-pie (they would link a dynamic PIE against
# libc.so, run by /lib/ld-musl-x86_64.so.1): the start files are given here, musl's rcrt1.o
# (which relocates the program itself) with gcc's crtbeginS/crtendS, and the linker is asked for
# what gcc's -static-pie asks of it.
set -eu
gcc=$1
shift
# the wrapper names its specs file, which lies in musl's library directory
specs=$(sed -n 's/.*-specs "\{0,1\}\([^" ]*musl-gcc\.specs\).*/\1/p' "$(command -v "$gcc")" | head -n 1)
lib=${specs%/*}
if [ -z "$specs" ] || [ ! -f "$lib/rcrt1.o" ] || [ ! -f "$lib/libc.a" ]; then
        [ "${1-}" = --check ] && exit 1
        echo "musl-link.sh: musl's rcrt1.o and libc.a not found beside $gcc's specs file" >&2
        exit 1
fi
[ "${1-}" = --check ] && exit 0
out=$1
shift
exec "$gcc" -nostartfiles "$lib/rcrt1.o" "$lib/crti.o" "$("$gcc" -print-file-name=crtbeginS.o)" \
        "$@" "$("$gcc" -print-file-name=crtendS.o)" "$lib/crtn.o" \
        -static -Wl,-pie,--no-dynamic-linker,-z,text \
        -Wl,-z,stack-size=8388608 -Wl,-z,relro,-z,now -o "$out"
