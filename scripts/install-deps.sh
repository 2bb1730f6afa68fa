#!/usr/bin/env bash
# Install what s2sbench needs on Debian 12, idempotently: only missing packages are fetched.
# Build: compiler, cmake, pkg-config and the -dev packages of our libraries.
# Tests: independent readers (sox, ffprobe, flac, GNU tar, python3) and espeak-ng's CLI as the anchor.
# ARPA n-gram readers for the n-gram tests: IRSTLM (compile-lm, tlm) and sphinxbase.
# Anchors of bench/tokenize.sh: NumPy (log-mel + argmin) and scikit-learn (KMeans).
# Fan-out tests: GNU parallel, and a private single-node Slurm (slurm-wlm, munge).
# SVG charts (test_plot, score_sweep.sh): xmllint (libxml2-utils) checks they are well-formed XML.
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libespeak-ng-dev espeak-ng-data libsndfile1-dev libsamplerate0-dev
      libavformat-dev libavcodec-dev libavutil-dev
      zlib1g-dev libjansson-dev libcmocka-dev libflac-dev libsoxr-dev libdeflate-dev
      espeak-ng sox libsox-fmt-all ffmpeg flac tar python3 time
      irstlm sphinxbase-utils
      clang libclang-rt-14-dev valgrind cppcheck clang-tidy
      python3-numpy python3-sklearn
      parallel slurm-wlm munge
      libxml2-utils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# python3 may come from elsewhere (pyenv); a working interpreter is enough.
if command -v python3 >/dev/null 2>&1; then
  # (exact match only: a pattern substitution would also cut "python3-numpy" to "-numpy")
  kept=()
  for p in "${missing[@]}"; do [ "$p" = python3 ] || kept+=("$p"); done
  missing=("${kept[@]}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
