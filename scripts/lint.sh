#!/usr/bin/env bash
# scripts/lint.sh [BUILD] — static analysis with the checked-in configuration:
#   cppcheck --enable=warning,performance,portability (suppressions: .cppcheck-suppressions,
#     jansson macros: scripts/cppcheck-jansson.cfg)
#   clang-tidy with .clang-tidy (bug finders + clang's static analyzer; compile flags from
#     BUILD/compile_commands.json, BUILD defaults to build-lint, configured here if needed)
# over libs2s, tools, synth and scorer. Exits 1 if either reports anything. Env: LINT_FILES to
# check only some files (e.g. LINT_FILES="libs2s/tar.c libs2s/sample.c"), LINT_ONLY=cppcheck|tidy.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
cd "$SRC"
B=${1:-build-lint}
read -r -a files <<<"${LINT_FILES:-$(ls libs2s/*.c tools/*.c synth/*.c scorer/*.c 2>/dev/null | tr '\n' ' ')}"
status=0

if [ "${LINT_ONLY:-cppcheck}" = cppcheck ] || [ -z "${LINT_ONLY:-}" ]; then
  echo "== cppcheck ($(cppcheck --version))"
  if ! cppcheck --enable=warning,performance,portability --error-exitcode=1 --inline-suppr -q \
      --std=c11 --library=posix --library=scripts/cppcheck-jansson.cfg -I libs2s -j2 \
      --suppressions-list=.cppcheck-suppressions "${files[@]}"; then
    echo "cppcheck: findings above" >&2
    status=1
  fi
fi

if [ "${LINT_ONLY:-tidy}" = tidy ] || [ -z "${LINT_ONLY:-}" ]; then
  echo "== clang-tidy ($(clang-tidy --version | grep -o 'version [0-9.]*'))"
  if [ ! -f "$B/compile_commands.json" ]; then
    cmake -S . -B "$B" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
  fi
  # gcc-only flags in the compile commands are not errors for clang
  out=$(printf '%s\n' "${files[@]}" | xargs -P 2 -n 1 clang-tidy -p "$B" --quiet \
        --extra-arg=-Wno-unknown-warning-option 2>/dev/null || true)
  found=$(printf '%s\n' "$out" | grep -E '^/.*: (error|warning): ' || true)
  if [ -n "$found" ]; then
    printf '%s\n' "$out"
    echo "clang-tidy: $(printf '%s\n' "$found" | wc -l) findings" >&2
    status=1
  fi
fi
[ "$status" = 0 ] && echo "lint: clean (${#files[@]} files)"
exit $status
