#!/usr/bin/env bash
# Mutation check: plants each bug of mutations.sh, one at a time, into a scratch copy of the working tree (never the
# tree itself), builds it, runs that mutation's CPU test filter with the FIXED FsCheck seed only, and prints whether a
# test caught it. See README.md.
#
#   tests/mutations/run.sh                 every mutation
#   tests/mutations/run.sh ID...           only these
#   tests/mutations/run.sh --list          the table
#
# Environment: NATIVEATTENTION_MUTATION_DIR (scratch, default .cache/mutations under the repository root).
# Exit status: 0 when every mutation was caught; 1 when one was not caught, is stale (its original text is no longer
# in its file exactly once), does not build or aborted the test host; 2 when the unmutated tree fails its own filters.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
here="$repo/tests/mutations"
scratch=${NATIVEATTENTION_MUTATION_DIR:-$repo/.cache/mutations}
tree="$scratch/tree"
logs="$scratch/logs"
CPU_TESTS='Backend=Cpu|FullyQualifiedName~NativeAttention.Tests.References.'

ids=() files=() filters=() descriptions=() originals=() replacements=()
mutation() {
  [ $# -eq 6 ] || { echo "mutations.sh: mutation $1 needs 6 fields, got $#" >&2; exit 2; }
  ids+=("$1") files+=("$2") filters+=("$3") descriptions+=("$4") originals+=("$5") replacements+=("$6")
}
# shellcheck source=mutations.sh
source "$here/mutations.sh"

if [ "${1:-}" = "--list" ]; then
  for i in "${!ids[@]}"; do printf '%-26s %s\n    %s\n' "${ids[$i]}" "${descriptions[$i]}" "${files[$i]}"; done
  exit 0
fi
selected=("$@")
wanted() { [ ${#selected[@]} -eq 0 ] && return 0; local s; for s in "${selected[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
for s in "${selected[@]}"; do
  found=0; for id in "${ids[@]}"; do [ "$id" = "$s" ] && found=1; done
  [ $found = 1 ] || { echo "unknown mutation: $s (see --list)" >&2; exit 2; }
done

# Occurrences of $2 in the text $1 (literal, no patterns).
occurrences() {
  local rest=$1 n=0
  while [[ $rest == *"$2"* ]]; do n=$((n + 1)); rest=${rest#*"$2"}; done
  echo $n
}

# Replaces the single occurrence of $2 by $3 in file $1; fails when $2 does not occur exactly once.
plant() {
  local content n
  content=$(cat "$1"; printf x); content=${content%x}
  n=$(occurrences "$content" "$2")
  [ "$n" = 1 ] || return 1
  printf '%s' "${content/"$2"/"$3"}" > "$1"
}

# The test project a filter runs in: PROJECT::FILTER names it; otherwise the ILGPU assembly's tests when the filter
# names them (NativeAttention.Ilgpu.Tests), the core tests otherwise.
project_of() {
  if [[ $1 == *::* ]]; then echo "${1%%::*}"
  else case "$1" in *NativeAttention.Ilgpu.Tests*) echo tests/NativeAttention.Ilgpu.Tests ;; *) echo tests/NativeAttention.Tests ;; esac; fi
}
filter_of() { if [[ $1 == *::* ]]; then echo "${1#*::}"; else echo "$1"; fi; }
build() { (cd "$tree" && timeout 1800 dotnet build "${2:-tests/NativeAttention.Tests}" -c Release -nologo) > "$1" 2>&1; }

# Runs a filter with the fixed seed only (the whole filter: xunit's stop-on-first-failure can abort the test host
# before the failure is reported).
run_tests() {
  local filter project log=$2
  filter=$(filter_of "$1") project=$(project_of "$1")
  (cd "$tree" && NATIVEATTENTION_FSCHECK_FRESH=off NATIVEATTENTION_FSCHECK_REPLAY= timeout 3600 \
    dotnet test "$project" -c Release --no-build --filter "$filter") > "$log" 2>&1
}
first_failure() { grep -m1 -E '^\s+Failed [A-Za-z]' "$1" | sed -E 's/^\s+Failed //; s/ \[.*//' || true; }
failures() { grep -cE '^\s+Failed [A-Za-z]' "$1" || true; }

# The scratch tree: tracked and untracked (not ignored) files of the working tree, as they are now.
mkdir -p "$tree" "$logs"
echo "Copying the working tree into $tree"
(cd "$repo" && git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf -) | (cd "$tree" && tar -xmf -)
# (-m: every copied file gets the current time, newer than any build output of an earlier run, whose last mutated
# build would otherwise look up to date against the restored sources and be tested as the "unmutated" tree.)

echo "Building the unmutated tree"
build "$logs/unmutated.build.log" || { echo "the unmutated tree does not build: $logs/unmutated.build.log" >&2; exit 2; }
declare -A built=([tests/NativeAttention.Tests]=1)
for i in "${!ids[@]}"; do
  wanted "${ids[$i]}" || continue
  project=$(project_of "${filters[$i]}")
  [ -n "${built[$project]:-}" ] && continue
  build "$logs/unmutated.build.log" "$project" || { echo "the unmutated tree does not build $project: $logs/unmutated.build.log" >&2; exit 2; }
  built[$project]=1
done
declare -A checked=()
for i in "${!ids[@]}"; do
  wanted "${ids[$i]}" || continue
  filter=${filters[$i]}
  [ -n "${checked[$filter]:-}" ] && continue
  echo "Checking that the unmutated tree passes: $filter"
  if ! run_tests "$filter" "$logs/unmutated.test.log"; then
    echo "the unmutated tree fails $filter (first: $(first_failure "$logs/unmutated.test.log")); see $logs/unmutated.test.log" >&2
    exit 2
  fi
  checked[$filter]=1
done

results=() status=0
for i in "${!ids[@]}"; do
  id=${ids[$i]}
  wanted "$id" || continue
  file="$tree/${files[$i]}"
  cp "$file" "$file.unmutated"
  start=$SECONDS
  if ! plant "$file" "${originals[$i]}" "${replacements[$i]}"; then
    result="STALE       original text not found exactly once in ${files[$i]}"
    status=1
  elif ! build "$logs/$id.build.log" "$(project_of "${filters[$i]}")"; then
    result="NO BUILD    see $logs/$id.build.log"
    status=1
  elif run_tests "${filters[$i]}" "$logs/$id.test.log"; then
    result="NOT CAUGHT  no test failed"
    status=1
  elif [ "$(failures "$logs/$id.test.log")" = 0 ]; then
    # No test reported a failure, yet the run failed: a crashed or aborted test host. Look before trusting it.
    result="ABORTED     the test run failed without a failed test (see $logs/$id.test.log)"
    status=1
  else
    result="caught      by $(failures "$logs/$id.test.log") tests, first $(first_failure "$logs/$id.test.log")"
  fi
  mv "$file.unmutated" "$file"
  touch "$file" # newer than the mutated build, so that the next build compiles the original again
  line=$(printf '%-26s %s (%ds)' "$id" "$result" $((SECONDS - start)))
  echo "$line"
  results+=("$line")
done

echo
echo "Mutations: ${#results[@]} planted, one at a time, CPU tests with the fixed FsCheck seed"
printf '%s\n' "${results[@]}"
exit $status
