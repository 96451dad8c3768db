#!/bin/sh
# Adds Batch Size Lab to the desktop's application menu for the current user (no root needed), from the folder
# this script sits in (the unpacked BatchSizeLab folder). Run it again after moving the folder.
#   ./install.sh              menu entry, icon, and the command 'batch-size-lab' in ~/.local/bin
#   ./install.sh --uninstall  removes all three (the folder itself stays)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
apps=$data/applications
icons=$data/icons/hicolor/256x256/apps
bin=$HOME/.local/bin

if [ "${1:-}" = "--uninstall" ]; then
    rm -f "$apps/batch-size-lab.desktop" "$icons/batch-size-lab.png" "$bin/batch-size-lab"
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
    echo "Removed the menu entry, icon and $bin/batch-size-lab."
    exit 0
fi

exe=$here/BatchSizeLab
[ -x "$exe" ] || { echo "error: $exe not found: run this script from the unpacked BatchSizeLab folder" >&2; exit 1; }
mkdir -p "$apps" "$icons" "$bin"
cp "$here/batch-size-lab.png" "$icons/batch-size-lab.png"
# Exec needs the absolute path; quote it for paths with spaces (desktop entry quoting rules).
sed "s|^Exec=.*|Exec=\"$exe\"|" "$here/batch-size-lab.desktop" > "$apps/batch-size-lab.desktop"
chmod 644 "$apps/batch-size-lab.desktop"
ln -sf "$exe" "$bin/batch-size-lab"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
echo "Installed: 'Batch Size Lab' in the application menu, and the command $bin/batch-size-lab"
