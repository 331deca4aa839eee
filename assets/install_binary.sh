# Install an uploaded binary after checking it arrived whole.
# Run as: sh -c "$(cat install_binary.sh)" install-binary SRC DEST SHA256 STAMP
# SRC must have SHA256, else nothing changes (exit 4). An existing DEST is
# kept as DEST.STAMP.bak. The new file goes to a temporary name beside DEST
# and is renamed over it, so a running program keeps its old file.
set -eu
src=$1 dest=$2 sum=$3 stamp=$4
got=$(sha256sum -- "$src" | cut -d ' ' -f 1)
if [ "$got" != "$sum" ]; then
    echo "uploaded $src has sha256 $got, expected $sum" >&2
    exit 4
fi
dir=$(dirname -- "$dest")
mkdir -p -- "$dir"
tmp="$dest.nydus-console-new"
cp -- "$src" "$tmp"
chmod 0755 -- "$tmp"
if [ -e "$dest" ]; then
    cp -p -- "$dest" "$dest.$stamp.bak"
    echo "backup=$dest.$stamp.bak"
fi
mv -f -- "$tmp" "$dest"
rm -f -- "$src"
echo "installed=$dest"
