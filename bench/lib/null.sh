# bench/lib/null.sh — sourced by benchmarks: null_sink DIR prints the path of a real null device.
# Some sandboxes replace /dev/null with a regular file: a benchmark writing a gigabyte of audio
# there would pay for page-cache writes (and measure them in the anchor). If /dev/null is not a
# character device, a real one is made in DIR (mknod, as root); failing that, /dev/null is used
# with a warning on stderr.
null_sink() {
  if [ -c /dev/null ]; then
    echo /dev/null
  elif mknod -m 666 "$1/null" c 1 3 2>/dev/null && [ -c "$1/null" ]; then
    echo "$1/null"
  else
    echo "bench: /dev/null is not a character device here and mknod failed: sinks are a regular file" >&2
    echo /dev/null
  fi
}
