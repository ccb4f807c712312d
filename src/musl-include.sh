#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The headers the musl-built programs (the agent, the CLI) see beside musl's own, as links into
# Debian's /usr/include: the kernel's UAPI headers (libc-independent; what a musl cross
# toolchain installs beside it) and the headers of the static libraries the CLI links (jansson,
# libmd, libcrypto, http_parser). Nothing else of /usr/include, glibc's headers above all, is
# visible to them. Usage: musl-include.sh DIR
set -eu
dir=$1
rm -rf "$dir"
mkdir -p "$dir/openssl"
multi=$(cc -print-multiarch 2>/dev/null || true)
arch=/usr/include/$multi
[ -n "$multi" ] && [ -d "$arch" ] || arch=/usr/include
ln -s /usr/include/linux "$dir/linux"
ln -s /usr/include/asm-generic "$dir/asm-generic"
if [ -d "$arch/asm" ]; then ln -s "$arch/asm" "$dir/asm"; else ln -s /usr/include/asm "$dir/asm"; fi
for h in jansson.h jansson_config.h sha2.h sha256.h http_parser.h; do
        # a missing one is the CLI's build to report (meson.build checks each library)
        [ -e "/usr/include/$h" ] && ln -s "/usr/include/$h" "$dir/$h"
done
# OpenSSL's headers are split between the common directory and the architecture's
# (opensslconf.h, configuration.h): one directory of links to both
for f in /usr/include/openssl/* "$arch"/openssl/*; do
        [ -e "$f" ] && ln -sf "$f" "$dir/openssl/"
done
exit 0
