# The trixie build chroot shared by scripts/check-swift603 and scripts/build-image: Debian trixie (amd64)
# with Debian's swiftlang 6.0.3 and the -dev packages of the C libraries the firmware links, made with
# mmdebstrap and cached in /var/cache/classbox/trixie-root. The local Swift package mirror is
# bind-mounted at /opt/swift-packages with the git URL rewrite the build machines use.
# Sourced, not run. Callers: trixie_chroot_ensure [--refresh]; trixie_chroot_mount; trixie_chroot_release;
# trixie_chroot_apt PACKAGES... (installs more packages into it); trixie_chroot_copy_source DIR.
trixie_root=${CLASSBOX_TRIXIE_ROOT:-/var/cache/classbox/trixie-root}
trixie_mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
trixie_packages="swiftlang,libstdc++-14-dev,libc6-dev,pkg-config,git,ca-certificates,libasound2-dev,libv4l-dev,libgpiod-dev,libopus-dev,libssl-dev"

trixie_chroot_release() {  # never leave the host's /dev or /proc mounted inside a tree that may be deleted
    local m
    for m in opt/swift-packages proc dev; do
        if mountpoint -q "$trixie_root/$m"; then umount "$trixie_root/$m" || umount -l "$trixie_root/$m" || true; fi
    done
}

trixie_chroot_ensure() {
    if [ "${1:-}" = "--refresh" ]; then trixie_chroot_release; rm -rf --one-file-system "$trixie_root"; fi
    # /usr/bin/swift is an absolute symlink: test it inside the chroot, not against the host.
    if ! chroot "$trixie_root" test -x /usr/bin/swift 2>/dev/null; then
        command -v mmdebstrap >/dev/null || env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
        echo "trixie chroot: making $trixie_root (swiftlang and the -dev packages)"
        mkdir -p "$(dirname "$trixie_root")"
        mmdebstrap --variant=minbase --include="$trixie_packages" trixie "$trixie_root.tar" "$trixie_mirror"
        rm -rf --one-file-system "$trixie_root"
        mkdir -p "$trixie_root" && tar -C "$trixie_root" -xf "$trixie_root.tar" && rm "$trixie_root.tar"
    fi
}

trixie_chroot_mount() {
    mkdir -p "$trixie_root/opt/swift-packages" "$trixie_root/proc" "$trixie_root/dev"
    mountpoint -q "$trixie_root/opt/swift-packages" || mount --bind /opt/swift-packages "$trixie_root/opt/swift-packages"
    mountpoint -q "$trixie_root/proc" || mount -t proc proc "$trixie_root/proc"
    mountpoint -q "$trixie_root/dev" || mount --bind /dev "$trixie_root/dev"
    printf '[url "/opt/swift-packages/"]\n\tinsteadOf = https://github.com/\n[safe]\n\tdirectory = *\n' > "$trixie_root/etc/gitconfig"
    cp -L /etc/resolv.conf "$trixie_root/etc/resolv.conf" 2>/dev/null || true
}

# Installs packages into the chroot when missing (apt-get update only then).
trixie_chroot_apt() {
    local missing=() p
    for p in "$@"; do
        chroot "$trixie_root" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "trixie chroot: installing ${missing[*]}"
    chroot "$trixie_root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    chroot "$trixie_root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Copies the worktree's tracked and new (not ignored) files to DIR inside the chroot, keeping mtimes so
# SwiftPM's incremental build (in a separate scratch directory) stays valid.
trixie_chroot_copy_source() {
    local dst=$trixie_root/$1
    rm -rf "$dst"; mkdir -p "$dst"
    git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -C "$dst" -xf -
}
