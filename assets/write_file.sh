# Replace a file atomically with the content on standard input.
# Run as: sh -c "$(cat write_file.sh)" write-file PATH NEW_SHA256 OLD_SHA256 STAMP
#   OLD_SHA256 is the sha256 the file must still have ("absent": it must not
#   exist), so a file changed by someone else since it was read is left alone.
# The new content goes to a temporary file beside PATH, is checked against
# NEW_SHA256 (a dropped connection leaves a short file, which is discarded),
# gets PATH's owner and mode, is synced and renamed over PATH. The old file is
# kept as PATH.STAMP.bak. Exit 3: precondition failed; 4: content mismatch;
# 5: interrupted (the connection dropped). The file is then unchanged.
set -eu
path=$1 new_sum=$2 old_sum=$3 stamp=$4
if [ -L "$path" ]; then
    path=$(readlink -f -- "$path")
fi
dir=$(dirname -- "$path")
base=$(basename -- "$path")
if [ ! -d "$dir" ]; then
    echo "directory $dir does not exist" >&2
    exit 3
fi
if [ -e "$path" ]; then
    current=$(sha256sum -- "$path" | cut -d ' ' -f 1)
else
    current=absent
fi
if [ "$old_sum" != "-" ] && [ "$current" != "$old_sum" ]; then
    echo "$path changed on the node since it was read (sha256 $current)" >&2
    exit 3
fi
tmp=$(mktemp -- "$dir/.$base.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
# A dropped connection closes stdout and stderr: the next message would kill
# the shell with SIGPIPE before the EXIT trap could remove the temporary file.
trap 'rm -f -- "$tmp"; exit 5' HUP INT TERM PIPE
cat > "$tmp"
received=$(sha256sum -- "$tmp" | cut -d ' ' -f 1)
if [ "$received" != "$new_sum" ]; then
    echo "received content has sha256 $received, expected $new_sum" >&2
    exit 4
fi
if [ -e "$path" ]; then
    chown --reference="$path" -- "$tmp"
    chmod --reference="$path" -- "$tmp"
    backup="$path.$stamp.bak"
    cp -p -- "$path" "$backup"
    echo "backup=$backup"
else
    chmod 0644 -- "$tmp"
fi
sync -- "$tmp" 2>/dev/null || sync
mv -f -- "$tmp" "$path"
trap - EXIT HUP INT TERM PIPE
sync -- "$dir" 2>/dev/null || true
echo "written=$path"
