# Node fact probe for nydus-console, run as: sh -c "$(cat probe.sh)" probe ARGS...
# It forks as little as it can: /proc and small files are read with shell
# builtins, and `ctr` and the --version calls run only when the daemon they
# describe has started, stopped or restarted since the previous probe.
#
# Arguments: NONCE SNAP_UNIT CTD_UNIT CTD_SOCKET CTD_PID_HINT SNAP_PID_HINT
# NYDUSD_BIN FULL, then paths tagged r:PATH (read the file), s:PATH (report its
# type) or g:ROOT (list ROOT/socket/*/api.sock). FULL is 1 (everything), 0 (skip
# what the PID hints show unchanged) or "paths" (only the path list). Output is
# a series of sections, each opened by a line "::nc-NONCE:: NAME ARGS"; the
# per-run nonce keeps file contents from forging a section.
m="::nc-$1::"
snap_unit=$2 ctd_unit=$3 ctd_sock=$4 ctd_hint=$5 snap_hint=$6 nydusd_bin=$7 full=$8
shift 8
paths() {
    i=0
    for a in "$@"; do
        i=$((i + 1))
        path=${a#?:}
        case $a in
            r:*)
                if [ -f "$path" ] && [ -r "$path" ]; then
                    printf '%s file %s ok\n' "$m" "$i"
                    # Builtins: for the few-KiB configs this is cheaper than cat.
                    while IFS= read -r line || [ -n "$line" ]; do
                        printf '%s\n' "$line"
                    done < "$path"
                    echo
                elif [ -e "$path" ]; then
                    printf '%s file %s unreadable\n' "$m" "$i"
                else
                    printf '%s file %s missing\n' "$m" "$i"
                fi
                ;;
            s:*)
                t=-
                if [ -S "$path" ]; then t=socket
                elif [ -d "$path" ]; then t=dir
                elif [ -c "$path" ]; then t=chardev
                elif [ -f "$path" ]; then t=file
                elif [ -e "$path" ]; then t=other
                fi
                printf '%s path %s %s\n' "$m" "$i" "$t"
                ;;
            g:*)
                printf '%s apisocks %s\n' "$m" "$i"
                for f in "$path"/socket/*/api.sock; do
                    [ -e "$f" ] && echo "$f"
                done
                ;;
        esac
    done
}
if [ "$full" = paths ]; then
    paths "$@"
    printf '%s end\n' "$m"
    exit 0
fi
# changed HINT COMM SEEN: true when the daemon's process differs from the
# previous probe: the hinted PID is gone, or none was hinted and one runs now.
changed() {
    if [ "$1" -gt 0 ] 2>/dev/null; then
        [ -r "/proc/$1/comm" ] && read -r c < "/proc/$1/comm" && [ "$c" = "$2" ] &&
            return 1
        return 0
    fi
    [ -n "$3" ]
}
printf '%s kernel\n' "$m"
read -r release < /proc/sys/kernel/osrelease && echo "$release"
printf '%s devices\n' "$m"
[ -c /dev/fuse ] && echo fuse
[ -c /dev/cachefiles ] && echo cachefiles
while read -r a b; do
    case "$a $b" in *fuse*|*erofs*) echo "fs $a $b" ;; esac
done < /proc/filesystems
if [ "$full" = 1 ]; then
    printf '%s kconfig\n' "$m"
    grep -sE '^CONFIG_(CACHEFILES_ONDEMAND|EROFS_FS_ONDEMAND|FUSE_FS)=' \
        "/boot/config-$release"
fi
paths "$@"
printf '%s procs\n' "$m"
cmdlines= snap_seen= ctd_seen=
for d in /proc/[0-9]*; do
    read -r c < "$d/comm" 2>/dev/null || continue
    case $c in
        containerd-nydu*|nydusd|nydus-*|containerd)
            # Skip processes of containers with their own PID namespace: they
            # are not this node's daemons. An unreadable link is kept.
            if [ -e "$d/ns/pid" ] && ! [ "$d/ns/pid" -ef "/proc/$$/ns/pid" ]; then
                continue
            fi
            case $c in
                containerd-nydu*) snap_seen=1 ;;
                containerd) ctd_seen=1 ;;
            esac
            read -r s < "$d/stat" 2>/dev/null || continue
            s=${s##*) }
            rest=${s#* }
            echo "${d#/proc/} ${s%% *} ${rest%% *} $c"
            cmdlines="$cmdlines $d/cmdline"
            ;;
    esac
done
printf '%s cmdlines\n' "$m"
[ -n "$cmdlines" ] && grep -azH '' $cmdlines
echo
# Unit state changes go with a change of the main PID, so while both daemons
# keep theirs the previous probe's `systemctl show` still holds.
if [ "$full" = 1 ] || changed "$ctd_hint" containerd "$ctd_seen" ||
    changed "$snap_hint" containerd-nydu "$snap_seen"; then
    printf '%s systemd\n' "$m"
    systemctl show --no-pager -p Id,LoadState,ActiveState,SubState,MainPID,NRestarts \
        -p ExecMainStartTimestamp,ExecMainStatus,Result,UnitFileState,FragmentPath \
        "$snap_unit" "$ctd_unit" 2>&1
    echo "rc=$?"
    # A snapshotter that does not run has left its reason in the journal: fatal
    # start-up errors go to stderr before its own logger is set up.
    if ! systemctl is-active --quiet "$snap_unit" 2>/dev/null; then
        printf '%s journal\n' "$m"
        journalctl --no-pager -u "$snap_unit" -n 12 -o short-iso 2>&1
    fi
fi
printf '%s cgroups\n' "$m"
for f in /sys/fs/cgroup/system.slice/nydusd/cgroup.procs \
         /sys/fs/cgroup/*/system.slice/nydusd/cgroup.procs; do
    [ -r "$f" ] || continue
    n=0
    while read -r p; do n=$((n + 1)); done < "$f"
    echo "$n $f"
done
if [ "$full" = 1 ] || changed "$ctd_hint" containerd "$ctd_seen"; then
    printf '%s plugins\n' "$m"
    if [ -S "$ctd_sock" ]; then
        timeout 8 ctr --address "$ctd_sock" --connect-timeout 2s plugin ls 2>&1
        echo "rc=$?"
    else
        echo "containerd socket $ctd_sock not found"
        echo "rc=-1"
    fi
fi
if [ "$full" = 1 ] || changed "$snap_hint" containerd-nydu "$snap_seen"; then
    version() {
        p=$(command -v "$2") || p=
        printf '%s version %s %s\n' "$m" "$1" "$p"
        [ -n "$p" ] && timeout 5 "$p" --version 2>&1
    }
    version snapshotter containerd-nydus-grpc
    version nydusd "$nydusd_bin"
    version containerd containerd
fi
printf '%s end\n' "$m"
