#!/usr/bin/env bash
# A/B of two built checkouts by alternating CLI processes: both builds meet the same minutes of a shared, noisy host.
# Usage: bench/scripts/ab-trees.sh OUT ROUNDS TREE_A TREE_B CASES.json [REPEATS]
#   TREE_A, TREE_B: checkouts with `dotnet build bench/NativeAttention.Cli -c Release` done; CASES.json: a case file as in
#   bench/cases/. Each round runs the CLI once from A, then once from B (`bench -b cpu --repeats REPEATS --budget 6`),
#   writing OUT/A.<round>.txt and OUT/B.<round>.txt; bench/scripts/ab-table.py OUT prints the medians and A/B.
#   A_ARGS / B_ARGS (environment): extra bench flags for one side, e.g. B_ARGS=--managed-arrays to time a tree whose
#   CLI aligns host memory by default against one that does not.
set -u
out=$1; rounds=$2; a=$3; b=$4; cases=$(realpath "$5"); repeats=${6:-41}
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  for t in A B; do
    d=$a; extra=${A_ARGS:-}; [ "$t" = B ] && d=$b && extra=${B_ARGS:-}
    (cd "$d" && timeout 900 dotnet run -c Release --no-build --project bench/NativeAttention.Cli -- bench -b cpu --cases "$cases" \
      --no-chart --repeats "$repeats" --budget 6 $extra 2>&1 | grep -E "^cpu" > "$out/$t.$r.txt")
  done
done
