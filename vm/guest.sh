#!/bin/bash
# Runs inside the lane's VM, chrooted into the host's (read-only) filesystem with the VM's own kernel:
# loads the test drivers (vivid, snd-aloop, uinput, the out-of-tree gpio-sim and vicodec), builds the
# simulated GPIO bank of Board/qemu-amd64.toml, and runs the VM-only tests against them. Its exit code is the lane's result.
# Usage (by vm/init): guest.sh RESULTS_DIR   (RESULTS_DIR/params holds the host's settings)
set -uo pipefail
results=$1
source "$results/params"   # kroot, test_binary, test_filter, label
say() { echo "guest: $*"; }

mods="$kroot/lib/modules/$(uname -r)"
[ -d "$mods" ] || { say "no modules for kernel $(uname -r) under $kroot"; exit 3; }
load() { modprobe -d "$kroot" "$@" || { say "modprobe $* failed"; exit 3; }; }
# vivid: one device, video capture only, one webcam input (discrete sizes and frame rates).
load vivid n_devs=1 node_types=0x1 num_inputs=1 input_types=0x0
load snd-aloop index=0 id=Loopback pcm_substreams=2
load gpio-sim
# vicodec: a stateful encoder and decoder of the kernel's FWHT test format, on the multi-planar API as the
# Pi 4's bcm2835-codec is (and with v4l2-mem2mem, both built out of tree).
load vicodec multiplanar=1
load uinput
load evdev   # /dev/input/eventN for the uinput key
mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config

# The simulated GPIO bank: label and lines as the qemu-amd64 profile expects (button 0, LED 1).
sim=/sys/kernel/config/gpio-sim/classbox
mkdir "$sim" "$sim/gpio-bank0" "$sim/gpio-bank0/line0" "$sim/gpio-bank0/line1"
echo "$label" > "$sim/gpio-bank0/label"
echo 8 > "$sim/gpio-bank0/num_lines"
echo button > "$sim/gpio-bank0/line0/name"
echo led > "$sim/gpio-bank0/line1/name"
echo 1 > "$sim/live"
chip=$(cat "$sim/gpio-bank0/chip_name")
say "drivers loaded: $(ls /dev/video* | tr '\n' ' ')| $(head -c 200 /proc/asound/cards | tr -s ' \n' ' ')| $chip ($label)"
udevadm settle 2>/dev/null || true

cd "$results"
export CLASSBOX_VM_LANE=1 CLASSBOX_VM_RESULTS="$results" CLASSBOX_GPIO_SIM_CHIP="$chip"
export LD_LIBRARY_PATH="${gpiod_library_path:-}"
say "running $test_binary (filter $test_filter)"
"$test_binary" --testing-library swift-testing --filter "$test_filter" 2>&1 | tee "$results/tests.log"
rc=${PIPESTATUS[0]}
say "tests exited with $rc"
exit "$rc"
