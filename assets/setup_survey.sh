# Read-only survey of a node before the setup wizard plans anything.
# Run as: sh -c "$(cat setup_survey.sh)" setup-survey NONCE BINARY... -- PATH...
# Prints "::nc-NONCE:: os", the PRETTY_NAME of /etc/os-release, then one line
# "::nc-NONCE:: bin PATH SHA256" per binary (SHA256 "-" when it is missing),
# then "::nc-NONCE:: path PATH TYPE" per path (dir, file, socket, chardev, -).
m="::nc-$1::"
shift
printf '%s os\n' "$m"
if [ -r /etc/os-release ]; then
    . /etc/os-release
    echo "${PRETTY_NAME:-${NAME:-unknown}}"
fi
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    sum=-
    if [ -f "$1" ]; then
        sum=$(sha256sum -- "$1" 2>/dev/null | cut -d ' ' -f 1)
    fi
    printf '%s bin %s %s\n' "$m" "$1" "${sum:--}"
    shift
done
[ $# -gt 0 ] && shift
for p in "$@"; do
    t=-
    if [ -S "$p" ]; then t=socket
    elif [ -d "$p" ]; then t=dir
    elif [ -c "$p" ]; then t=chardev
    elif [ -f "$p" ]; then t=file
    elif [ -e "$p" ]; then t=other
    fi
    printf '%s path %s %s\n' "$m" "$p" "$t"
done
printf '%s end\n' "$m"
