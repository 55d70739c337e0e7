#!/usr/bin/env bash
# Installs Bun's musl build (@oven/bun-linux-x64-musl, the version in package.json) so
# that the TypeScript tests also run in a real musl process, the most faithful musl test.
#
# Debian 12 ships neither a musl libstdc++ nor a musl loader new enough for one, so:
#  - libstdc++ and libgcc_s for musl come from the pandas musllinux wheel on PyPI, which
#    vendors them (pinned by version and sha256);
#  - the musl loader (>= 1.2.4, for the DT_RELR relocations that libstdc++ uses) comes
#    from Debian 13's `musl` package, downloaded with a private apt source list, so the
#    system's apt sources and installed packages are not touched;
#  - the bun binary's interpreter and RUNPATH are pointed at those with Debian's patchelf
#    (also only downloaded), so `process.execPath` stays right for child processes;
#  - OpenSSL 3 for musl (the TLS engine, as Alpine's libssl3) comes from the psycopg2-binary
#    musllinux wheel, which vendors libssl and libcrypto (pinned by version and sha256);
#    PREFIX/lib/libssl.so.3 is what ZEV_OPENSSL names for the musl runs.
# Usage: tools/install-bun-musl.sh PREFIX   (then PREFIX/bin/bun)
set -euo pipefail
PREFIX=$(realpath -m "${1:?usage: $0 PREFIX}")
BUN_VERSION=$(node -p 'require("./package.json").devDependencies.bun')
PANDAS_WHL=pandas-3.1.1-cp311-cp311-musllinux_1_2_x86_64.whl
PANDAS_SHA256=2bfb3810c303fd084fb101bf11c4a2ce8228eb8e15e411801f1d5e6ea383ee4e
PSYCOPG_WHL=psycopg2_binary-2.9.13-cp311-cp311-musllinux_1_2_x86_64.whl
PSYCOPG_SHA256=f28b5f2fa8154d0d97e97a664136f58d1639ca008d45d6e09e69fff24826abee
LIBSSL=libssl-cd6b6ac0.so.3
LIBCRYPTO=libcrypto-b5f139f6.so.3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$PREFIX/bin" "$PREFIX/lib"
cd "$WORK"

npm pack --silent "@oven/bun-linux-x64-musl@$BUN_VERSION" >/dev/null
tar xzf "oven-bun-linux-x64-musl-$BUN_VERSION.tgz" package/bin/bun

python3 -m pip download -q --no-cache-dir --no-deps --only-binary=:all: \
  --platform musllinux_1_2_x86_64 --python-version 3.11 pandas==3.1.1 -d .
echo "$PANDAS_SHA256  $PANDAS_WHL" | sha256sum -c --quiet -
python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); [z.extract(n) for n in sys.argv[2:]]' \
  "$PANDAS_WHL" 'pandas.libs/libstdc++-5d72f927.so.6.0.33' 'pandas.libs/libgcc_s-0cd532bd.so.1'
python3 -m pip download -q --no-cache-dir --no-deps --only-binary=:all: \
  --platform musllinux_1_2_x86_64 --python-version 3.11 psycopg2-binary==2.9.13 -d .
echo "$PSYCOPG_SHA256  $PSYCOPG_WHL" | sha256sum -c --quiet -
python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); [z.extract(n) for n in sys.argv[2:]]' \
  "$PSYCOPG_WHL" "psycopg2_binary.libs/$LIBSSL" "psycopg2_binary.libs/$LIBCRYPTO"

mkdir -p apt/parts apt/lists/partial apt/cache/archives/partial
printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >apt/parts/trixie.sources
A=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$WORK/apt/parts"
  -o Dir::State::Lists="$WORK/apt/lists" -o Dir::Cache="$WORK/apt/cache" -o APT::Sandbox::User=root)
apt-get -qq "${A[@]}" update
apt-get -qq "${A[@]}" download musl
dpkg-deb -x musl_*_amd64.deb musl-root
apt-get -qq -o APT::Sandbox::User=root download patchelf
dpkg-deb -x patchelf_*_amd64.deb patchelf-root

install -m755 musl-root/usr/lib/x86_64-linux-musl/libc.so "$PREFIX/lib/ld-musl-x86_64.so.1"
install -m755 pandas.libs/libstdc++-5d72f927.so.6.0.33 "$PREFIX/lib/libstdc++.so.6"
install -m644 pandas.libs/libgcc_s-0cd532bd.so.1 "$PREFIX/lib/libgcc_s-0cd532bd.so.1"
install -m755 package/bin/bun "$PREFIX/bin/bun"
# libssl finds its libcrypto by the wheel's name, beside it ($ORIGIN).
install -m755 "psycopg2_binary.libs/$LIBSSL" "psycopg2_binary.libs/$LIBCRYPTO" "$PREFIX/lib/"
ln -sf "$LIBSSL" "$PREFIX/lib/libssl.so.3"
patchelf-root/usr/bin/patchelf --set-interpreter "$PREFIX/lib/ld-musl-x86_64.so.1" \
  --set-rpath '$ORIGIN/../lib' "$PREFIX/bin/bun"
v=$("$PREFIX/lib/ld-musl-x86_64.so.1" 2>&1 | sed -n 's/^Version //p' || true)
[ "$(printf '%s\n' 1.2.4 "$v" | sort -V | head -1)" = 1.2.4 ] || { echo "need musl >= 1.2.4, got '$v'"; exit 1; }
echo "bun $("$PREFIX/bin/bun" --version) (musl $v) in $PREFIX/bin/bun"
