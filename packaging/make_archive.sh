#!/bin/sh
# Packs the built one-folder app into dist/BatchSizeLab-<version>-<os>-<arch>.tar.xz (Linux, macOS).
#   sh packaging/make_archive.sh [dist/BatchSizeLab]
# xz: the smallest archive of the common formats (see docs/packaging.md for the comparison), unpacked by plain
# `tar xf` on every Linux and macOS without extra tools; XZ_OPT=-T0 compresses on all cores (GNU tar; macOS's
# bsdtar ignores it and compresses on one).
set -eu
bundle=${1:-dist/BatchSizeLab}
[ -d "$bundle" ] || { echo "error: $bundle not found: build it first (make package)" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/engine/__init__.py")
os=$(uname -s | tr '[:upper:]' '[:lower:]')
arch=$(uname -m)
parent=$(cd "$(dirname "$bundle")" && pwd)
name=$(basename "$bundle")
archive=$parent/$name-$version-$os-$arch.tar.xz
rm -f "$archive"
XZ_OPT="-T0 -6" tar -C "$parent" -cJf "$archive.part" "$name"
mv "$archive.part" "$archive"
echo "bundle:  $(du -sh "$bundle" | cut -f1)  $bundle"
echo "archive: $(du -h "$archive" | cut -f1)  $archive"
# macOS: users want the .app; ditto keeps its symlinks, permissions and extended attributes (signatures).
app="$parent/Batch Size Lab.app"
if [ "$os" = "darwin" ] && [ -d "$app" ]; then
    zip=$parent/$name-$version-macos-$arch.zip
    rm -f "$zip"
    ditto -c -k --keepParent "$app" "$zip"
    echo "app:     $(du -h "$zip" | cut -f1)  $zip"
fi
