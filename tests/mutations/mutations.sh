# The mutation table: realistic bugs planted one at a time by run.sh, each of which some CPU test must catch with
# the fixed FsCheck seed. One call per mutation:
#
#   mutation ID FILE FILTER DESCRIPTION ORIGINAL REPLACEMENT
#
# FILE is relative to the repository root; ORIGINAL must occur exactly once in it (run.sh reports "stale" otherwise);
# FILTER is a `dotnet test --filter` expression ("$CPU_TESTS": every CPU-bound family test plus the reference tests).
# Single-quote ORIGINAL and REPLACEMENT so that nothing in them is expanded. A new family adds its own block below
# (see README.md): at least its mask/visibility, its indexing and its output-precision bugs.

# --- shared masking (Families/Flash/FlashProblem.cs: used by CPU flash, CPU decode and, until they own their rules, the references)

mutation shared-window-start \
  managed/NativeAttention/Families/Flash/FlashProblem.cs "$CPU_TESTS" \
  'The shared visibility function starts a sliding window one key late' \
  'long start = windowLeft >= 0 ? aligned - windowLeft : 0;' \
  'long start = windowLeft >= 0 ? aligned - windowLeft + 1 : 0;'

mutation shared-causal-nq-ne-nk \
  managed/NativeAttention/Families/Flash/FlashProblem.cs "$CPU_TESTS" \
  'The shared visibility function lets a causal query see one key too many when Nq != Nk' \
  'if (causal) end = Math.Min(end, aligned + 1);' \
  'if (causal) end = Math.Min(end, aligned + (queryLength == keyLength ? 1 : 2));'

# --- CPU flash (Cpu/Flash/CpuFlash.cs)

mutation flash-mask-skip \
  managed/NativeAttention/Cpu/Flash/CpuFlash.cs "$CPU_TESTS" \
  'CPU flash skips a key tile whose first key is exactly the last visible key (window end taken as exclusive twice)' \
  'if (k0 >= s.GroupHigh[g] || k0 + keys <= s.GroupLow[g]) continue;' \
  'if (k0 >= s.GroupHigh[g] - 1 || k0 + keys <= s.GroupLow[g]) continue;'

mutation flash-mask-skip-start \
  managed/NativeAttention/Cpu/Flash/CpuFlash.cs "$CPU_TESTS" \
  'CPU flash skips a key tile whose last key is exactly the first visible key (window start taken as exclusive)' \
  'if (k0 >= s.GroupHigh[g] || k0 + keys <= s.GroupLow[g]) continue;' \
  'if (k0 >= s.GroupHigh[g] || k0 + keys <= s.GroupLow[g] + 1) continue;'

mutation flash-lse-log2 \
  managed/NativeAttention/Cpu/Flash/CpuFlash.cs "$CPU_TESTS" \
  'CPU flash writes the log-sum-exp in base 2 (log2/ln mix-up: the row max and sum are in log2 units)' \
  'float log2SumExp = max + MathF.Log2(sum);' \
  'float log2SumExp = (max + MathF.Log2(sum)) / 0.693147181f;'

# Narrow filter: with the wrong head set, a low-rank bias with W per head would index outside the scratch block.
mutation flash-gqa-modulo \
  managed/NativeAttention/Cpu/Flash/CpuFlash.cs 'FullyQualifiedName~CpuFlashTests' \
  'CPU flash maps query head h to kv head h % Hkv instead of h / (Hq / Hkv)' \
  'int head = kvHead * p.GroupSize + c / queries, index = q0 + c % queries;' \
  'int head = kvHead + c / queries * p.KeyValueHeads, index = q0 + c % queries;'

# --- CPU output conversion (Cpu/CpuPacking.cs: every CPU kernel's 16-bit output)

mutation bf16-truncation \
  managed/NativeAttention/Cpu/CpuPacking.cs "$CPU_TESTS" \
  'CPU kernels truncate float32 to bfloat16 (round toward zero) instead of rounding to nearest' \
  '((BFloat16*)destination)[i * stride] = (BFloat16)(source[i] * factor);' \
  '((BFloat16*)destination)[i * stride] = BFloat16.FromRawValue((ushort)(BitConverter.SingleToUInt32Bits(source[i] * factor) >> 16));'

# --- CPU merge (Cpu/Merge/CpuMerge.cs)

mutation merge-negative-infinity \
  managed/NativeAttention/Cpu/Merge/CpuMerge.cs "$CPU_TESTS" \
  'CPU MergeStates multiplies a -inf partial (weight 0, garbage output) in instead of skipping it' \
  'if (weight == 0) continue;' \
  '// (weight 0 is not skipped)'

# --- CPU decode (Cpu/Decode/CpuDecode.cs)

mutation decode-split-boundary \
  managed/NativeAttention/Cpu/Decode/CpuDecode.cs "$CPU_TESTS" \
  'CPU decode rounds a split start up while the previous split end rounds down: a key at an uneven boundary is dropped' \
  'splitStart = low + (int)((long)(high - low) * split / p.Splits);' \
  'splitStart = low + (int)(((long)(high - low) * split + p.Splits - 1) / p.Splits);'

# --- CPU neighborhood (Cpu/Neighborhood/CpuNeighborhood.cs; only the CPU neighborhood tests, which compare against the reference)

mutation nbh-rpb-offset-sign \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood indexes the relative-position bias by query - key instead of key - query (mirrored table)' \
  's.BiasTerm[a * maxColumns + c] = low[a] - (first[a] + i) + p.Kernel[a] - 1;' \
  's.BiasTerm[a * maxColumns + c] = (first[a] + i) - low[a] + p.Kernel[a] - 1;'

mutation nbh-padding-full-length \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood takes windows on the full axis instead of the valid extent (no inward shift at the padding border)' \
  'var window = NeighborhoodProblem.WindowOnAxis(x, extent[a], plan.Kernel[a], plan.Dilation[a], plan.Stride[a], plan.Causal[a]);' \
  'var window = NeighborhoodProblem.WindowOnAxis(x, plan.Length[a], plan.Kernel[a], plan.Dilation[a], plan.Stride[a], plan.Causal[a]);'

mutation nbh-full-tile-edge \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood treats a key tile reaching one past the intersection of its columns windows as full (skips its mask)' \
  'full &= tileLow[a] >= bounds[2] && tileHigh[a] < bounds[3];' \
  'full &= tileLow[a] >= bounds[2] && tileHigh[a] <= bounds[3];'
# --- CPU chunked linear attention (Cpu/Linear/)

mutation linear-mask-diagonal \
  managed/NativeAttention/Cpu/Linear/CpuLinearKernels.cs "$CPU_TESTS" \
  'CPU linear keeps the key just after the query in the intra-chunk scores (causal mask one past the diagonal)' \
  'T bt = TSimd.Broadcast(log2Gate[t]), end = TSimd.Broadcast(t + 1);' \
  'T bt = TSimd.Broadcast(log2Gate[t]), end = TSimd.Broadcast(t + 2);'

mutation linear-state-decay \
  managed/NativeAttention/Cpu/Linear/CpuLinear.cs "$CPU_TESTS" \
  'CPU linear decays the carried state by the chunk gates except the last token (cumulative gate read one token early)' \
  'float last = s.Log2Gate[l - 1];' \
  'float last = s.Log2Gate[Math.Max(l - 2, 0)];'

mutation linear-gqa-head \
  managed/NativeAttention/Cpu/Linear/CpuLinear.cs "$CPU_TESTS" \
  'CPU linear maps output heads to key heads by modulo instead of by group (GQA/GVA indexing)' \
  'int kh = p.Problem.KeyHead(head);' \
  'int kh = head % p.Problem.KeyHeads;'

# --- GPU chunked linear attention (kernels/linear/; one source for OpenCL and CUDA, checked by the OpenCL linear tests on
# PoCL, so these need an OpenCL runtime; the million-token test is left out to keep each run near a minute)

mutation linear-gpu-mask-diagonal \
  kernels/linear/linear_fwd.h 'FullyQualifiedName~OpenClLinearTests&FullyQualifiedName!~MillionTokens' \
  'GPU linear drops the diagonal of the intra-chunk scores (causal mask s < t): a token misses its own key and value' \
  'const float a = s <= t ? arow[s] * NA_EXP2(bt - bl[s]) : 0.0f;' \
  'const float a = s < t ? arow[s] * NA_EXP2(bt - bl[s]) : 0.0f;'

mutation linear-gpu-verify-source \
  kernels/linear/linear_decode.h 'FullyQualifiedName~OpenClLinearTests&FullyQualifiedName!~MillionTokens' \
  'GPU linear verify advances every draft token from the committed state instead of the previous intermediate state' \
  'const int from_intermediate = p.verify && t > 0;' \
  'const int from_intermediate = 0;'

mutation linear-gpu-value-head \
  kernels/linear/linear_fwd.h 'FullyQualifiedName~OpenClLinearTests&FullyQualifiedName!~MillionTokens' \
  'GPU linear maps output heads to value heads by modulo instead of by group (GVA/GQA indexing)' \
  'const na_i64 v_base = p.qkvo.v_offset + b * p.qkvo.v_stride_b + (h / p.group_v) * p.qkvo.v_stride_h;' \
  'const na_i64 v_base = p.qkvo.v_offset + b * p.qkvo.v_stride_b + (h % (p.heads / p.group_v)) * p.qkvo.v_stride_h;'
