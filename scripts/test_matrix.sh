#!/usr/bin/env bash
# `make test-matrix`: the suite of `make test` on QGIS 3.22 (this Debian 12 host) and on the QGIS of
# newer Debian releases, each in a debootstrap root (Debian 13 trixie: QGIS 3.40 LTR; sid: 3.44).
#
# Roots live outside the checkout (S1S2_MATRIX_DIR, default /var/cache/s1s2-matrix, ~4 GB each) and
# are reused. A root gets the host's Debian mirror (from the host's apt sources) and the host's apt,
# pip and certificate configuration, so it reaches the package registries the way the host does.
# Inside a root, a copy of the working tree (tracked and untracked files, not ignored ones) runs
# `make test`, i.e. the project's own scripts/setup.sh and requirements-dev.txt install QGIS and the
# test tools: a new requirement needs no change here.
#
# One summary line per QGIS version. Test failures, and a `make setup` that fails for another
# reason than the network, fail the matrix. When roots cannot be built or provisioned here (not
# root, no debootstrap, no network) the matrix says so loudly and skips them (exit 0), unless
# S1S2_MATRIX_REQUIRED=1. S1S2_MATRIX_SUITES="trixie sid" chooses the roots; S1S2_MATRIX_HOST_LOG
# names the log of a `make test` just run on the host (.ci/run) instead of running it again;
# S1S2_MATRIX_HOST=0 leaves the host out; S1S2_MATRIX_MIRROR overrides the Debian mirror and
# S1S2_MATRIX_LOGS the log folder (default .build/matrix).
set -uo pipefail
cd "$(dirname "$0")/.."
PROJECT=$(pwd)
MATRIX_DIR=${S1S2_MATRIX_DIR:-/var/cache/s1s2-matrix}
SUITES=${S1S2_MATRIX_SUITES:-trixie sid}
REQUIRED=${S1S2_MATRIX_REQUIRED:-0}
LOGS=${S1S2_MATRIX_LOGS:-$PROJECT/.build/matrix}
IN_ROOT=/root/s1s2_toolkit   # where the checkout copy lives inside a root
mkdir -p "$LOGS"

SUMMARY=()
FAILED=0
SKIPPED=0
MOUNTED=()

# apt/pip messages of a download that failed for want of network (not of a missing package).
NETWORK_ERRORS='Temporary failure resolving|Could not resolve|Temporary failure in name resolution|Network is unreachable|Connection (timed out|refused)|NewConnectionError|Max retries exceeded|ReadTimeoutError|Unable to fetch some archives'

loud() { printf '\n!!!!! %s\n\n' "$*" >&2; }

unmount_all() {
    local root
    for root in "${MOUNTED[@]}"; do
        for point in dev sys proc; do
            mountpoint -q "$root/$point" && umount -R "$root/$point" 2>/dev/null \
                || { mountpoint -q "$root/$point" && umount -R -l "$root/$point"; }
        done
    done
    MOUNTED=()
}
trap unmount_all EXIT
trap 'unmount_all; exit 130' INT TERM

# `pytest` summary of a log: "512 passed, 3 skipped in 181.2s" (the last "=== ... ===" line).
pytest_summary() {
    grep -E '^=+ .*(passed|failed|error|skipped|no tests ran).* in [0-9.]+s' "$1" | tail -1 \
        | sed -E 's/^=+ //; s/ =+$//'
}

host_mirror() {
    # The first Debian (not security) URI of the host's apt sources, deb822 or one-line style.
    local uri=${S1S2_MATRIX_MIRROR:-}
    [ -n "$uri" ] || uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && $0 !~ /security/ && u {print u; exit}' \
              /etc/apt/sources.list.d/*.sources 2>/dev/null)
    if [ -z "$uri" ]; then
        uri=$(grep -hsE '^deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                  | grep -v security | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
                  | head -1)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

copy_host_config() {
    # apt (not sources: the root has its own suite), pip and extra CA certificates of the host.
    local root=$1
    cp -a /etc/apt/apt.conf.d/. "$root/etc/apt/apt.conf.d/"
    printf 'APT::Install-Recommends "false";\n' > "$root/etc/apt/apt.conf.d/90s1s2-matrix"
    # whole folders: a pip.conf may name files beside it (constraint = /etc/xdg/pip/...)
    for conf in /etc/pip.conf /etc/xdg/pip "$HOME/.config/pip" "$HOME/.pip"; do
        if [ -e "$conf" ]; then
            local target="$root${conf/#$HOME//root}"
            mkdir -p "$(dirname "$target")" && rm -rf "$target" && cp -a "$conf" "$target"
        fi
    done
    if [ -d /usr/local/share/ca-certificates ]; then
        mkdir -p "$root/usr/local/share/ca-certificates"
        cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
    fi
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}

mount_root() {
    local root=$1
    MOUNTED+=("$root")
    mount -t proc proc "$root/proc" &&
    mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys" &&
    mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
}

in_root() {
    # A command in a root with a clean environment plus the host's pip/certificate variables.
    local root=$1; shift
    local env_vars=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
                    LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive
                    PYTHONUNBUFFERED=1)  # a crash at exit must not swallow the summary
    local name
    for name in $(compgen -e); do
        case $name in PIP_*|SSL_CERT_*|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|http_proxy|https_proxy|no_proxy|HTTP_PROXY|HTTPS_PROXY|NO_PROXY)
            env_vars+=("$name=${!name}");;
        esac
    done
    chroot "$root" /usr/bin/env -i "${env_vars[@]}" "$@"
}

remove_partial() {
    # A failed debootstrap may leave proc/sys mounted inside: unmount, and never rm -rf across
    # a mount point.
    local dir=$1 point
    [ -e "$dir" ] || return 0
    for point in $(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$point" 2>/dev/null
    done
    if awk -v d="$dir/" 'index($2, d) == 1 {found = 1} END {exit !found}' /proc/mounts; then
        loud "MATRIX: $dir still has mounts: not removed"
        return 1
    fi
    rm -rf "$dir"
}

build_root() {
    # debootstrap into <suite>.partial, then rename: a root that exists is complete.
    local suite=$1 root=$2 mirror
    mirror=$(host_mirror)
    echo "== building the $suite root in $root from $mirror (about 5 minutes)"
    remove_partial "$root.partial" || return 1
    mkdir -p "$MATRIX_DIR"
    debootstrap --variant=minbase --include=ca-certificates,make,python3 \
        "$suite" "$root.partial" "$mirror" > "$LOGS/$suite-debootstrap.log" 2>&1 || {
            tail -5 "$LOGS/$suite-debootstrap.log" >&2; remove_partial "$root.partial"; return 1; }
    copy_host_config "$root.partial"
    chroot "$root.partial" update-ca-certificates > /dev/null 2>&1 || return 1
    mv "$root.partial" "$root"
}

copy_checkout() {
    # The working tree's tracked and untracked files (not the ignored .venv, .build, outputs); the
    # root's own .venv is kept between runs (scripts/setup.sh refreshes it when requirements change).
    local target="$1$IN_ROOT"
    mkdir -p "$target"
    find "$target" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
    if git -C "$PROJECT" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
        git -C "$PROJECT" ls-files -z --cached --others --exclude-standard \
            | (cd "$PROJECT" && xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) \
            | tar -C "$PROJECT" --null -T - -cf - | tar -C "$target" -xf -
    else  # an unpacked source tree: all but the local environment and outputs
        tar -C "$PROJECT" --exclude=./.venv --exclude=./.build --exclude=./.git \
            --exclude=./demo-output --exclude=./dist -cf - . | tar -C "$target" -xf -
    fi
}

versions_line() {
    # "QGIS 3.40.6, Python 3.13.5, numpy 2.2.4, GDAL 3.10.3" of a root ("" = the host).
    local root=$1 code
    code='from qgis.core import Qgis; import sys, numpy; from osgeo import gdal
v = Qgis.QGIS_VERSION_INT
print(f"QGIS {v // 10000}.{v // 100 % 100}.{v % 100}, Python {sys.version.split()[0]}, numpy {numpy.__version__}, GDAL {gdal.__version__}")'
    if [ -z "$root" ]; then
        /usr/bin/python3 -c "$code" 2>/dev/null || echo "QGIS ?"
    else
        in_root "$root" /usr/bin/python3 -c "$code" 2>/dev/null || echo "QGIS ?"
    fi
}

report() {
    # report <label> <log> <status>: one summary line.
    local label=$1 log=$2 status=$3 summary
    summary=$(pytest_summary "$log")
    SUMMARY+=("$(printf '%-7s %-60s %s' "$status" "$label" "${summary:-no pytest summary: see $log}")")
}

run_host() {
    local log="$LOGS/host.log" label status=PASS
    label="$(versions_line "") [host]"
    if [ -n "${S1S2_MATRIX_HOST_LOG:-}" ]; then
        cp "$S1S2_MATRIX_HOST_LOG" "$log"
        grep -qE '^=+ .* passed' "$log" && ! grep -qE '^=+ .*(failed|error)' "$log" || status=FAIL
    else
        echo "== QGIS on the host: make test (log $log)"
        local start=$(date +%s)
        make -C "$PROJECT" test > "$log" 2>&1 || status=FAIL
        echo "   $(( $(date +%s) - start )) s"
    fi
    [ "$status" = PASS ] || FAILED=1
    report "$label" "$log" "$status"
}

run_root() {
    local suite=$1 root="$MATRIX_DIR/$1" log="$LOGS/$1.log" status=PASS start
    if [ ! -d "$root" ]; then
        start=$(date +%s)
        if build_root "$suite" "$root"; then
            echo "   built in $(( $(date +%s) - start )) s"
        else
            loud "MATRIX: could not build the Debian $suite root (network or mirror?): $suite SKIPPED, see $LOGS/$suite-debootstrap.log"
            SUMMARY+=("$(printf '%-7s %-60s %s' SKIPPED "Debian $suite" "root could not be built")")
            SKIPPED=1
            return
        fi
    fi
    copy_host_config "$root"   # the host's configuration may have changed since the build
    copy_checkout "$root"
    if ! mount_root "$root"; then
        loud "MATRIX: cannot mount /proc, /sys, /dev in $root: $suite SKIPPED"
        SUMMARY+=("$(printf '%-7s %-60s %s' SKIPPED "Debian $suite" "cannot mount into the root")")
        SKIPPED=1; unmount_all; return
    fi
    echo "== Debian $suite root: make setup, make test (log $log)"
    start=$(date +%s)
    if ! in_root "$root" bash -c "cd $IN_ROOT && make setup" > "$log" 2>&1; then
        unmount_all
        tail -20 "$log" >&2
        if grep -qiE "$NETWORK_ERRORS" "$log"; then
            loud "MATRIX: the Debian $suite root could not download its packages (network): $suite SKIPPED"
            SUMMARY+=("$(printf '%-7s %-60s %s' SKIPPED "Debian $suite" "setup could not download (network): see $log")")
            SKIPPED=1
        else  # e.g. a requirement without a wheel that does not build: the project's fault
            SUMMARY+=("$(printf '%-7s %-60s %s' FAIL "Debian $suite" "make setup failed: see $log")")
            FAILED=1
        fi
        return
    fi
    in_root "$root" bash -c "cd $IN_ROOT && make test" >> "$log" 2>&1 || status=FAIL
    echo "   $(( $(date +%s) - start )) s"
    local label
    label="$(versions_line "$root") [Debian $suite]"
    unmount_all
    [ "$status" = PASS ] || FAILED=1
    report "$label" "$log" "$status"
}

MATRIX_START=$(date +%s)
[ "${S1S2_MATRIX_HOST:-1}" = 0 ] || run_host
skip_all() {
    loud "MATRIX: $1: Debian $SUITES NOT TESTED (SKIPPED)"
    for suite in $SUITES; do
        SUMMARY+=("$(printf '%-7s %-60s %s' SKIPPED "Debian $suite" "$1")")
    done
    SKIPPED=1
}

if [ "$(id -u)" != 0 ]; then
    skip_all "not root, debootstrap roots cannot be built or entered"
elif ! command -v debootstrap > /dev/null && \
        ! apt-get -o DPkg::Lock::Timeout=900 install -y -qq debootstrap > "$LOGS/debootstrap-install.log" 2>&1; then
    skip_all "debootstrap is not installed and could not be installed"
else
    for suite in $SUITES; do run_root "$suite"; done
fi

echo
echo "== S1S2 Toolkit test matrix ($(( $(date +%s) - MATRIX_START )) s; logs in $LOGS)"
printf '%s\n' "${SUMMARY[@]}"
if [ "$SKIPPED" = 1 ]; then
    loud "MATRIX INCOMPLETE: some QGIS versions were SKIPPED (see above)"
    [ "$REQUIRED" = 1 ] && exit 2
fi
exit $FAILED
