#!/bin/sh
# launch @VERSION@ (commit @COMMIT@): one self-extracting file (docs/dist.md). After this script
# comes a tar.gz of the PyInstaller bundle; the first run unpacks it into a cache directory named
# by the bundle's hash, every later run only execs the cached program. Clear: rm -rf the dir below.
h=@HASH@
if [ -n "${LAUNCH_CACHE_DIR:-}" ]; then d=$LAUNCH_CACHE_DIR
elif [ -n "${XDG_CACHE_HOME:-}" ]; then d=$XDG_CACHE_HOME/launch
elif [ -n "${HOME:-}" ]; then d=$HOME/.cache/launch
else d=${TMPDIR:-/tmp}/launch-$(id -u); fi
[ -x "$d/$h/launch" ] && exec "$d/$h/launch" "$@"
# First run of this build: unpack next to the final place, then rename (atomic, so two first
# runs at once never see half a bundle: the loser of the rename uses the winner's copy).
self=$0
case $self in */*) ;; *) self=$(command -v -- "$0") ;; esac
mkdir -p "$d" && t=$(mktemp -d "$d/.$h.XXXXXX") || {
  echo "launch: cannot create a directory in $d (set LAUNCH_CACHE_DIR)" >&2; exit 1; }
if ! tail -c +@OFFSET@ "$self" | tar -xzf - -C "$t"; then
  rm -rf "$t"; echo "launch: cannot unpack $self into $d" >&2; exit 1
fi
mv -T "$t/launch" "$d/$h" 2>/dev/null || [ -x "$d/$h/launch" ] || {
  rm -rf "$t"; echo "launch: cannot move the unpacked bundle to $d/$h" >&2; exit 1; }
rm -rf "$t"
exec "$d/$h/launch" "$@"
exit 127
