#!/usr/bin/env bash
# Makes (once, cached) the Swift SDK bundle that cross-compiles the firmware for arm64 from the amd64
# trixie chroot with Debian's swiftlang 6.0.3: a sysroot of trixie arm64 packages (swiftlang:arm64 for the
# Swift runtime and its static libraries, and the -dev packages of the C libraries), a swift-sdk.json and
# a toolset (lld). Cross-building is about ten times faster than building natively under qemu-user.
# Usage: scripts/lib/arm64-sdk.sh TRIXIE_ROOT CACHE_DIR   (installs TRIXIE_ROOT/build/sdks/...)
set -euo pipefail
root=$1; cache=$2
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages="swiftlang,libc6-dev,libstdc++-14-dev,libgcc-14-dev,linux-libc-dev,libasound2-dev,libv4l-dev,libgpiod-dev,libopus-dev,libssl-dev"
pkgkey=$(printf '%s\n' "$packages" "sdk-v1" | sha256sum | cut -c1-16)   # the sysroot's packages
key=$pkgkey-layout2                                                      # and how the bundle is laid out
bundle=$root/build/sdks/classbox-trixie-arm64.artifactbundle
[ "$(cat "$bundle/.key" 2>/dev/null)" = "$key" ] && exit 0
tarball=$cache/arm64-sysroot-$pkgkey.tar
if [ ! -f "$tarball" ]; then
    echo "arm64 SDK: extracting trixie arm64 packages into a sysroot ($packages)"
    # extract: unpack the packages (and their dependencies) without running anything of arm64.
    mmdebstrap --variant=extract --arch=arm64 --include="$packages" trixie "${tarball%.tar}.part.tar" "$mirror" \
        > "$cache/arm64-sysroot.log" 2>&1 || { tail -n 20 "$cache/arm64-sysroot.log"; exit 1; }
    mv "${tarball%.tar}.part.tar" "$tarball"
fi
rm -rf "$bundle"; mkdir -p "$bundle/sdk/sysroot"
tar -C "$bundle/sdk/sysroot" -xf "$tarball" --exclude='./dev/*' \
    --exclude='./usr/share/doc/*' --exclude='./usr/share/man/*' --exclude='./usr/share/locale/*'
sysroot=$bundle/sdk/sysroot
# Merged /usr, as an installed trixie has it (the extract variant makes no /lib -> usr/lib link, and
# glibc's linker scripts name /lib/aarch64-linux-gnu/libm.so.6).
for d in bin sbin lib; do
    if [ -d "$sysroot/$d" ] && [ ! -L "$sysroot/$d" ]; then
        mkdir -p "$sysroot/usr/$d"; cp -a "$sysroot/$d/." "$sysroot/usr/$d/"; rm -rf "$sysroot/$d"
    fi
    [ -e "$sysroot/$d" ] || ln -s "usr/$d" "$sysroot/$d"
done
# Absolute symlinks inside the sysroot must point into it, not at the build chroot's own files.
find "$sysroot" -type l -lname '/*' | while read -r link; do
    target=$(readlink "$link"); ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")" "$link"
done
cat > "$bundle/info.json" <<'JSON'
{ "schemaVersion": "1.0",
  "artifacts": { "classbox-trixie-arm64": { "type": "swiftSDK", "version": "6.0.3",
                 "variants": [ { "path": "sdk" } ] } } }
JSON
cat > "$bundle/sdk/swift-sdk.json" <<'JSON'
{ "schemaVersion": "4.0",
  "targetTriples": { "aarch64-unknown-linux-gnu": {
      "sdkRootPath": "sysroot",
      "swiftResourcesPath": "sysroot/usr/libexec/swift/lib/swift",
      "swiftStaticResourcesPath": "sysroot/usr/libexec/swift/lib/swift_static",
      "toolsetPaths": [ "toolset.json" ] } } }
JSON
cat > "$bundle/sdk/toolset.json" <<'JSON'
{ "schemaVersion": "1.0",
  "swiftCompiler": { "extraCLIOptions": [ "-use-ld=lld" ] },
  "linker": { "path": "/usr/libexec/swift/bin/ld.lld" } }
JSON
echo "$key" > "$bundle/.key"
echo "arm64 SDK: $(du -sh "$bundle" | cut -f1) at ${bundle#$root}"
