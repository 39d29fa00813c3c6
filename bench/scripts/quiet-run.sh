#!/usr/bin/env bash
# Quiet-machine CPU figures: `info --remeasure`, then every bench takes --adjacent-peaks, so each case's % of peak
# is against the streaming-read (memory-bound cases) or FMA probe (the others) run right before and right after its
# timed runs, with both probe values in the reports and the probes' min .. max over each bench in its summary line.
# Neighborhood, linear and delta cases; decode f32/f16/bf16 MHA/GQA through both entry points.
# Usage: bench/scripts/quiet-run.sh OUTDIR (from the repo root, after a Release build).
set -u
out=${1:-/tmp/quiet12}; mkdir -p "$out"
cli() { timeout 900 dotnet run -c Release --no-build --project bench/NativeAttention.Cli -- "$@"; }
uptime | tee "$out/uptime-start.txt"
# The cached peaks, for comparison with the adjacent probes (the benches below do not use them).
cli info --remeasure > "$out/info.txt" 2>&1
for f in neighborhood linear delta; do
  cli bench -b cpu --cases bench/cases/$f.json --adjacent-peaks --no-chart --repeats 9 --budget 3 \
    --markdown "$out/$f.md" --json "$out/$f.json" > "$out/$f.log" 2>&1
done
uptime | tee "$out/uptime-mid.txt"
for kv in "" "--kvcache"; do
  cli bench -b cpu --nq 1 --n 4096,16384,65536 --heads 32 --kv-heads 8,32 --d 128 --dtype f32,f16,bf16 $kv --adjacent-peaks \
    --no-chart --repeats 9 --budget 3 --markdown "$out/decode${kv:+-kvcache}.md" --json "$out/decode${kv:+-kvcache}.json" \
    > "$out/decode${kv:+-kvcache}.log" 2>&1
done
cli info --remeasure > "$out/info-end.txt" 2>&1
uptime | tee "$out/uptime-end.txt"
