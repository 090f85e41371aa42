#!/bin/sh
# Install or upgrade linegate on a Raspberry Pi OS / Debian box, from this source tree.
#
#   sudo systemd/install.sh                      # install, or upgrade in place
#   sudo systemd/install.sh --config DIR         # first install with this line config
#   sudo systemd/install.sh --bench              # also the simulated devices (a bench box)
#
# What it does, and what an upgrade keeps:
# - the package goes into a new virtualenv /opt/linegate/venv-<version>-<time>, and the
#   symlink /opt/linegate/venv (which the units name) is switched to it only once it
#   installed and checked the config; the previous one stays for a rollback
#   (`ln -sfn <old> /opt/linegate/venv && systemctl restart linegate`), older ones go;
# - the line config lives in /etc/linegate and is never overwritten: a first install
#   copies --config DIR (default: the reference line), an upgrade leaves it alone;
# - the data lives in /var/lib/linegate (the SQLite store, the outbox): never touched here;
#   the gateway migrates its schema itself on start;
# - the user `linegate` (groups dialout and input), the units, and the service enabled and
#   (re)started; `systemctl status linegate` then says "serving line ...".
#
# For a test or a staging root, everything is overridable: LINEGATE_PREFIX, LINEGATE_ETC,
# LINEGATE_DATA, LINEGATE_UNITS, and LINEGATE_SYSTEM=no (no apt, no user, no systemctl).
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${LINEGATE_PREFIX:-/opt/linegate}
ETC=${LINEGATE_ETC:-/etc/linegate}
DATA=${LINEGATE_DATA:-/var/lib/linegate}
UNITS=${LINEGATE_UNITS:-/etc/systemd/system}
SYSTEM=${LINEGATE_SYSTEM:-yes}
PYTHON=${PYTHON:-python3}
CONFIG="$SRC/station_configs/reference-line"
BENCH=no

while [ $# -gt 0 ]; do
    case "$1" in
        --config) CONFIG=$2; shift 2 ;;
        --bench) BENCH=yes; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { echo "linegate install: $*"; }

if [ "$SYSTEM" = yes ]; then
    [ "$(id -u)" = 0 ] || { echo "install.sh: run it as root (sudo)" >&2; exit 1; }
    # evdev (HID scanners) compiles on install: a compiler and the kernel's input headers.
    # The reports' PDFs: WeasyPrint needs Pango, and the Chinese text a CJK font.
    say "system packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        python3 python3-venv python3-dev gcc linux-libc-dev \
        libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk >/dev/null
    if ! id linegate >/dev/null 2>&1; then
        say "user linegate"
        useradd --system --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin linegate
    fi
    usermod -a -G dialout,input linegate
fi

VERSION=$("$PYTHON" -c "import tomllib,sys; print(tomllib.load(open(sys.argv[1],'rb'))['project']['version'])" "$SRC/pyproject.toml")
NEW="$PREFIX/venv-$VERSION-$(date +%Y%m%d%H%M%S)-$$"
mkdir -p "$PREFIX"
say "virtualenv $NEW"
"$PYTHON" -m venv "$NEW"
"$NEW/bin/python" -m pip install -q --upgrade pip
"$NEW/bin/python" -m pip install -q "$SRC"

# The config: copied on the first install only.
if [ ! -e "$ETC/line.toml" ]; then
    say "config $ETC (from $CONFIG)"
    mkdir -p "$ETC"
    for f in "$CONFIG"/*.toml; do
        if [ "$BENCH" = yes ]; then
            # The gateway's unit has a private /tmp: simulated devices live in /run.
            sed 's#/tmp/linegate-sim#/run/linegate-sim#g' "$f" > "$ETC/$(basename "$f")"
        else
            cp "$f" "$ETC/"
        fi
    done
else
    say "config $ETC kept"
fi
# A relative store path would land in the config folder: the data folder is given instead.
"$NEW/bin/linegate" check-config "$ETC"

mkdir -p "$DATA"
if [ "$SYSTEM" = yes ]; then
    chown -R root:linegate "$ETC"
    chmod -R u=rwX,g=rX,o= "$ETC"
    chown linegate:linegate "$DATA"
    chmod 0750 "$DATA"
fi

# The switch: one rename of a symlink, so the units never see a half-installed venv.
OLD=$(readlink "$PREFIX/venv" 2>/dev/null || true)
ln -sfn "$NEW" "$PREFIX/venv.next"
mv -T "$PREFIX/venv.next" "$PREFIX/venv"
say "venv -> $NEW${OLD:+ (was $OLD)}"
# Keep the previous venv for a rollback; remove the older ones.
for old in "$PREFIX"/venv-*; do
    [ "$old" = "$NEW" ] || [ "$old" = "$OLD" ] || rm -rf "$old"
done

mkdir -p "$UNITS"
install -m 0644 "$SRC/systemd/linegate.service" "$UNITS/linegate.service"
if [ "$BENCH" = yes ]; then
    install -m 0644 "$SRC/systemd/linegate-simulate.service" "$UNITS/linegate-simulate.service"
fi

if [ "$SYSTEM" = yes ]; then
    systemctl daemon-reload
    if [ "$BENCH" = yes ]; then
        systemctl enable -q linegate-simulate.service
        systemctl restart linegate-simulate.service
    fi
    systemctl enable -q linegate.service
    say "restarting linegate (Type=notify: this returns once it serves)"
    systemctl restart linegate.service
    systemctl --no-pager --lines=0 status linegate.service || true
fi
say "done: $VERSION"
