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

mutation decode-merge-partial-row \
  managed/NativeAttention/Cpu/Decode/CpuDecode.cs "$CPU_TESTS" \
  'CPU decode merges split partials from a row index taken as a float offset (the row width dropped in the pointer form)' \
  'AddScaled(acc, p.Partials + p.PartialRow(b, kvHead, split, row) * dv, weight, dv);' \
  'AddScaled(acc, p.Partials + p.PartialRow(b, kvHead, split, row), weight, dv);'

mutation decode-row-tile-sum \
  managed/NativeAttention/Cpu/Decode/CpuDecode.cs "$CPU_TESTS" \
  'CPU decode'"'"'s one-row, four-key tile sums the fourth key'"'"'s odd vectors from the third key'"'"'s accumulator (a copy-paste slip)' \
  'TSimd.Sum4(TSimd.Add(a0, b0), TSimd.Add(a1, b1), TSimd.Add(a2, b2), TSimd.Add(a3, b3)).Store(scores);' \
  'TSimd.Sum4(TSimd.Add(a0, b0), TSimd.Add(a1, b1), TSimd.Add(a2, b2), TSimd.Add(a3, b2)).Store(scores);'

mutation decode-row-walk-slot \
  managed/NativeAttention/Cpu/Decode/CpuDecode.cs "$CPU_TESTS" \
  'CPU decode'"'"'s pointer walk over an unpaged cache never advances the value row: every key of a block reads the block'"'"'s first value row' \
  'nint keySlot = (nint)p.KeySlotBytes, valueSlot = (nint)p.ValueSlotBytes;' \
  'nint keySlot = (nint)p.KeySlotBytes, valueSlot = 0;'

mutation decode-fused-fold-values \
  managed/NativeAttention/Cpu/Decode/CpuDecode.cs "$CPU_TESTS" \
  'CPU decode'"'"'s fused binary16 check folds the first key'"'"'s value row in place of the third'"'"'s (a copy-paste slip: NaN in that value row reaches the scaled-down reads)' \
  '        top = FiniteHalf.Fold(top, (ushort*)(k2 + valueOffset));' \
  '        top = FiniteHalf.Fold(top, (ushort*)(k0 + valueOffset));'

mutation decode-paired-fold-row \
  managed/NativeAttention/Cpu/Decode/CpuDecode.cs "$CPU_TESTS" \
  'CPU decode'"'"'s paired 4 x 4 tile folds its third key'"'"'s K and V rows twice and never its fourth'"'"'s into the finiteness check' \
  '            if (check) top = FoldQuad(top, k0, k1, k2, k3, valueOffset);' \
  '            if (check) top = FoldQuad(top, k0, k1, k2, k2, valueOffset);'

mutation decode-paired-odd-sign \
  managed/NativeAttention/Cpu/Simd/PairLoads.cs "$CPU_TESTS" \
  'Paired loads widen the odd binary16 elements (read scaled down) with a logical shift: negative values lose their sign' \
  '            return (Avx512F.ShiftRightArithmetic(pairs, 3) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle();' \
  '            return (Avx512F.ShiftRightLogical(pairs, 3) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle();'

mutation decode-scaled-queries-overflow \
  managed/NativeAttention/Cpu/Decode/CpuDecode.cs "$CPU_TESTS" \
  'CPU decode takes every binary16 query as finite once scaled by 2^112 (queries that overflow read keys and values scaled down)' \
  '        return finite;' \
  '        return true;'

mutation decode-subnormal-count-zeros \
  managed/NativeAttention/Cpu/Simd/FiniteHalf.cs "$CPU_TESTS" \
  'The subnormal count that moves decode off the scaled binary16 reads also counts zeros (an item of zero-heavy rows leaves them for nothing)' \
  'counts -= Vector512.LessThan(Vector512.ShiftLeft(Vector512.Load(row), 1) - Vector512<ushort>.One, Vector512.Create((ushort)0x7FF));' \
  'counts -= Vector512.LessThan(Vector512.ShiftLeft(Vector512.Load(row), 1), Vector512.Create((ushort)0x800));'

mutation decode-subnormal-watch-stuck \
  managed/NativeAttention/Cpu/Decode/CpuDecode.cs "$CPU_TESTS" \
  'An item that once met frequent subnormals never returns to the scaled binary16 reads' \
  'if (_exact ? 2 * _sum < _enter : _sum >= _enter) _exact = !_exact;' \
  'if (!_exact && _sum >= _enter) _exact = true;'

mutation half-widen-subnormal-bias \
  managed/NativeAttention/Cpu/Simd/Simd512.cs "$CPU_TESTS" \
  'The 512-bit binary16 widening rebiases zero and subnormal halves like normal ones (an implicit leading 1 counted, 2^-15 subtracted)' \
  'var small = ((magnitude + Vector512.Create(HalfBits.SmallBias)).AsSingle() - Vector512.Create(HalfBits.SmallOffset)).AsUInt32();' \
  'var small = ((magnitude + Vector512.Create(HalfBits.Rebias)).AsSingle() - Vector512.Create(HalfBits.SmallOffset / 2)).AsUInt32();'

mutation decode-paired-exact-even \
  managed/NativeAttention/Cpu/Simd/PairLoads.cs "$CPU_TESTS" \
  'Paired loads widen the even binary16 elements exactly (blocks with subnormals or infinities) from the odd ones: the high half taken for the low' \
  '        return Simd512.HalfToSingle(Vector512.ShiftRightArithmetic(Vector512.ShiftLeft(pairs, 16), 16));' \
  '        return Simd512.HalfToSingle(Vector512.ShiftRightArithmetic(pairs, 16));'

mutation decode-flash-split-threads \
  managed/NativeAttention/Cpu/Decode/CpuDecode.cs 'FullyQualifiedName~CpuDecodeRoutingTests' \
  'CPU decode caps a Flash call'"'"'s split-rule thread count at the context'"'"'s: the split count, so the result, depends on the thread count' \
  'AutomaticSplits(problem, baseItems, problem.IsFlashCall ? FlashCallThreads : threads);' \
  'AutomaticSplits(problem, baseItems, problem.IsFlashCall ? Math.Min(FlashCallThreads, threads) : threads);'

# --- CPU neighborhood (Cpu/Neighborhood/CpuNeighborhood.cs; only the CPU neighborhood tests, which compare against the reference)

mutation nbh-rpb-offset-sign \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood indexes the relative-position bias by query - key instead of key - query (mirrored table)' \
  't.Bias[at + i] = low - groupPosition + kernel - 1;' \
  't.Bias[at + i] = groupPosition - low + kernel - 1;'

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

mutation nbh-box-corner-last-query \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood places the key box of a query box at its last query window (earlier windows start before the box)' \
  'int boxLow = BoxLow(a, segment.Group, segment.First + b0, Math.Min(plan.Box[a], segment.Count - b0));' \
  'int boxLow = BoxLow(a, segment.Group, segment.First + b0 + Math.Min(plan.Box[a], segment.Count - b0) - 1, 1);'
# --- CPU chunked linear attention (Cpu/Linear/)

mutation linear-mask-diagonal \
  managed/NativeAttention/Cpu/Linear/CpuLinearKernels.cs "$CPU_TESTS" \
  'CPU linear keeps the key just after the query in the intra-chunk scores (causal mask one past the diagonal)' \
  'T bt = TSimd.Broadcast(log2Gate[t]), end = TSimd.Broadcast(t + 1);' \
  'T bt = TSimd.Broadcast(log2Gate[t]), end = TSimd.Broadcast(t + 2);'

mutation linear-causal-mask \
  managed/NativeAttention/Cpu/Linear/CpuLinearKernels.cs "$CPU_TESTS" \
  'CPU linear keeps the key just after the query in the factored-decay scores (diagonal-block mask one past the diagonal)' \
  'T end = TSimd.Broadcast(t + 1);' \
  'T end = TSimd.Broadcast(t + 2);'

mutation linear-state-decay \
  managed/NativeAttention/Cpu/Linear/CpuLinear.cs "$CPU_TESTS" \
  'CPU linear decays the carried state by the chunk gates except the last token (cumulative gate read one token early)' \
  'bL = b[l - 1];' \
  'bL = b[Math.Max(l - 2, 0)];'

mutation linear-gqa-head \
  managed/NativeAttention/Cpu/Linear/CpuLinear.cs "$CPU_TESTS" \
  'CPU linear maps output heads to key heads by modulo instead of by group (GQA/GVA indexing)' \
  'int kh = p.Problem.KeyHead(head);' \
  'int kh = head % p.Problem.KeyHeads;'

mutation linear-perkey-factored-keys \
  managed/NativeAttention/Cpu/Linear/CpuLinear.cs "$CPU_TESTS" \
  'CPU linear with per-key gates (GLA) decays each key to the chunk end from the cumulative gate of the token before it (factored scores)' \
  'DecayRow<TSimd, T>(kt, kt, lastRow, s.Log2Gates + (long)t * fp, fp);' \
  'DecayRow<TSimd, T>(kt, kt, lastRow, s.Log2Gates + (long)Math.Max(t - 1, 0) * fp, fp);'

mutation linear-gate-scan \
  managed/NativeAttention/Families/Linear/RecurrentInputs.cs "$CPU_TESTS" \
  'The vectorised log-gate scan lets positive gates through (only -inf is rejected in whole vectors)' \
  'if (!Vector256.GreaterThanAll(v, low) || !Vector256.LessThanOrEqualAll(v, Vector256<float>.Zero)) return false;' \
  'if (!Vector256.GreaterThanAll(v, low)) return false;'

# --- neighborhood, OpenCL/CUDA kernel (kernels/neighborhood/neighborhood_window.h: the window rule and query tiling
# both GPU kernels share). Caught on PoCL by the OpenCL neighborhood tests; without an OpenCL runtime these tests
# skip and the mutation reads NOT CAUGHT.

mutation nbh-gpu-causal-border \
  kernels/neighborhood/neighborhood_window.h 'FullyQualifiedName~OpenClNeighborhoodTests' \
  'GPU neighborhood: a causal stride tile cut off by the end of the axis leads from past the end, so its windows start too late' \
  'const int leader = tile + s - 1 < lg - 1 ? tile + s - 1 : lg - 1;' \
  'const int leader = tile + s - 1;'

mutation nbh-gpu-dilation-group \
  kernels/neighborhood/neighborhood_window.h 'FullyQualifiedName~OpenClNeighborhoodTests' \
  'GPU neighborhood: query tiles of the shorter dilation groups are numbered from group 0 (the longer groups are run twice, the shorter never)' \
  '*group = r + u / tiles_small;' \
  '*group = u / tiles_small;'

mutation nbh-gpu-full-tile \
  kernels/neighborhood/neighborhood_window.h 'FullyQualifiedName~OpenClNeighborhoodTests' \
  'GPU neighborhood: a key tile spanning two box rows is taken as exact along the last axis, so a partial tile skips the mask' \
  'if (a0 != b0 || a1 != b1) { a2 = 0; b2 = t->ext[2] - 1; }' \
  'if (a0 != b0) { a2 = 0; b2 = t->ext[2] - 1; }'
# --- block-sparse (Families/BlockSparse/BlockSparseProblem.cs, Cpu/BlockSparse/CpuBlockSparse.cs)

mutation blocksparse-partial-as-full \
  managed/NativeAttention/Cpu/BlockSparse/CpuBlockSparse.cs "$CPU_TESTS" \
  'CPU block-sparse skips the element predicate on partial blocks shared by every head of an item (treats them as full)' \
  'int kind0 = s.Kind[0] == KindPartial && p.PredicateNone ? KindFull : s.Kind[0];' \
  'int kind0 = s.Kind[0] == KindPartial ? KindFull : s.Kind[0];'

mutation blocksparse-range-end \
  managed/NativeAttention/Cpu/BlockSparse/CpuBlockSparse.cs "$CPU_TESTS" \
  'CPU block-sparse lets a partial block column see one key past its predicate range (end taken as inclusive)' \
  'end = Math.Clamp(s.End[column] - k0, start, keys);' \
  'end = Math.Clamp(s.End[column] - k0 + 1, start, keys);'

mutation blocksparse-group-mask-head \
  managed/NativeAttention/Families/BlockSparse/BlockSparseProblem.cs "$CPU_TESTS" \
  'A mask shared per GQA group is read by query head modulo the mask heads instead of by group' \
  'int h = head / (QueryHeads / Mask.MaskHeads);' \
  'int h = head % Mask.MaskHeads;'

# --- block-sparse GPU kernels (kernels/blocksparse/, run on OpenCL: PoCL in CI; the shared tile walk also drives the
# CUDA tensor-core kernel). Filter: the OpenCL block-sparse tests (BlockSparseTests and BlockSparseGpuTests).

mutation bsp-gpu-first-partial-as-full \
  kernels/blocksparse/blocksparse_tiles.h 'FullyQualifiedName~OpenClBlockSparse' \
  'GPU block-sparse takes the first partial block of each row for a full one: its element predicate is skipped' \
  'NA_INLINE int na_bsp_is_partial(const na_bsp_tiles* t) { return t->e >= t->partial_begin; }' \
  'NA_INLINE int na_bsp_is_partial(const na_bsp_tiles* t) { return t->e > t->partial_begin; }'

mutation bsp-gpu-short-last-block \
  kernels/blocksparse/blocksparse_tiles.h 'FullyQualifiedName~OpenClBlockSparse' \
  'GPU block-sparse ends a short last key block one key early (off by one at Nk)' \
  'int k1 = bk < nk - k0 ? k0 + bk : nk;' \
  'int k1 = bk < nk - k0 ? k0 + bk : nk - 1;'

mutation bsp-gpu-clip-first-row \
  kernels/blocksparse/blocksparse_tiles.h 'FullyQualifiedName~OpenClBlockSparse' \
  'GPU block-sparse clips partial blocks to the keys the first row of a work-group sees instead of the last row' \
  't.clip_end = na_bsp_key_end(p, g, last);' \
  't.clip_end = na_bsp_key_end(p, g, first);'

mutation bsp-gpu-split-remainder \
  kernels/blocksparse/blocksparse_tiles.h 'FullyQualifiedName~OpenClBlockSparse' \
  'GPU block-sparse split-KV divides before multiplying: a split ends early and the remainder blocks of a row are dropped' \
  't.end = row_begin + (int)((na_i64)count * (g.split + 1) / p.splits);' \
  't.end = row_begin + count / p.splits * (g.split + 1);'

# --- block-sparse content builder on the GPU (kernels/blocksparse/content.h; checked on OpenCL against the CPU builder)

mutation bsp-content-gqa-modulo \
  kernels/blocksparse/content.h 'FullyQualifiedName~OpenClContentBuilder' \
  'GPU content builder scores query head h against kv head h % Hkv instead of h / (Hq / Hkv)' \
  'const int kv_row = b * p.hkv + h / (p.hq / p.hkv);' \
  'const int kv_row = b * p.hkv + h % p.hkv;'

mutation bsp-content-forced-mass \
  kernels/blocksparse/content.h 'FullyQualifiedName~OpenClContentBuilder' \
  'GPU content builder leaves the forced blocks out of the cumulative mass: gamma selection keeps too many blocks' \
  '        if (forced) mass += prob[c];' \
  '        (void)forced;'
# --- CPU delta rule (Cpu/DeltaRule/; only the CPU delta-rule tests, which compare against the reference)

mutation delta-mask-subdiagonal \
  managed/NativeAttention/Cpu/DeltaRule/CpuDeltaRule.cs 'FullyQualifiedName~CpuDeltaRuleTests' \
  'CPU delta rule drops the first sub-diagonal of the UT matrix (strictly-lower mask s < t - 1: each token misses its predecessor)' \
  'T bt = TSimd.Broadcast(log2Gate[t]), end = TSimd.Broadcast(t), scale = TSimd.Broadcast(beta[t]);' \
  'T bt = TSimd.Broadcast(log2Gate[t]), end = TSimd.Broadcast(t - 1), scale = TSimd.Broadcast(beta[t]);'

mutation delta-l2norm-eps-outside \
  managed/NativeAttention/Cpu/DeltaRule/CpuDeltaRule.cs 'FullyQualifiedName~CpuDeltaRuleTests' \
  'CPU delta rule L2-normalises by x / (|x| + eps) instead of x / sqrt(|x|^2 + eps) (a 1e-6 change at magnitude 1, 10% at 0.001)' \
  'float inverse = 1f / MathF.Sqrt(sum + DeltaRuleOptions.L2NormEpsilon);' \
  'float inverse = 1f / (MathF.Sqrt(sum) + DeltaRuleOptions.L2NormEpsilon);'

mutation delta-correction-undecayed \
  managed/NativeAttention/Cpu/DeltaRule/CpuDeltaRule.cs 'FullyQualifiedName~CpuDeltaRuleTests' \
  'CPU delta rule corrects the values against the chunk-start state without its in-chunk decay (V - K S instead of V - 2^b K S)' \
  's.RowScale[t] = -float.Exp2(s.Log2Gate[t]);' \
  's.RowScale[t] = -1;'

mutation delta-decode-gated-key \
  managed/NativeAttention/Cpu/DeltaRule/CpuDeltaRule.cs 'FullyQualifiedName~CpuDeltaRuleTests' \
  'CPU delta-rule decode (K-major) reads k^T S from the state before its decay (k^T S instead of k^T G S)' \
  'float gk = d.GatedK[i], gq = d.GatedQ[i];' \
  'float gk = d.K[i], gq = d.GatedQ[i];'
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

# --- ILGPU interop (managed/NativeAttention.Ilgpu/Interop/; tests in tests/NativeAttention.Ilgpu.Tests/Interop, which
# run.sh builds and runs for filters naming that project; the round trips place every tensor a few elements into its
# ILGPU buffer, so an offset bug moves every element)

mutation ilgpu-view-index \
  managed/NativeAttention.Ilgpu/Interop/IlgpuAttention.cs 'FullyQualifiedName~NativeAttention.Ilgpu.Tests.Interop' \
  'ILGPU interop forgets where a sub-view starts in its buffer: the tensor starts at the buffer'"'"'s element 0' \
  'return new TensorView(Storage(buffer, type, name), shape, strides, index + offset);' \
  'return new TensorView(Storage(buffer, type, name), shape, strides, offset);'

mutation ilgpu-2d-strides \
  managed/NativeAttention.Ilgpu/Interop/IlgpuAttention.cs 'FullyQualifiedName~NativeAttention.Ilgpu.Tests.Interop' \
  'ILGPU interop pairs a 2-D view'"'"'s [Y, X] axes with its strides in ILGPU order [XStride, YStride]' \
  '[view.Stride.YStride, view.Stride.XStride], 0, nameof(view));' \
  '[view.Stride.XStride, view.Stride.YStride], 0, nameof(view));'

mutation ilgpu-index-array-start \
  managed/NativeAttention.Ilgpu/Interop/IlgpuAttention.cs 'FullyQualifiedName~NativeAttention.Ilgpu.Tests.Interop' \
  'ILGPU interop reads an index array (cu_seqlens, block table) from the start of its buffer, not of its sub-view' \
  'return new IlgpuHostMemory<int>(buffer, ((IContiguousArrayView)view).Index, (int)view.Length).Memory;' \
  'return new IlgpuHostMemory<int>(buffer, 0, (int)view.Length).Memory;'

mutation ilgpu-host-identity \
  managed/NativeAttention.Ilgpu/Interop/IlgpuHostStorage.cs 'FullyQualifiedName~NativeAttention.Ilgpu.Tests.Interop' \
  'ILGPU interop gives each host view its own allocation identity, so an output overlapping an input in one buffer passes' \
  'internal override (object Allocation, long ByteOffset) Identity => (_buffer, 0);' \
  'internal override (object Allocation, long ByteOffset) Identity => (this, 0);'
# --- GPU delta rule (kernels/deltarule/: the chunked UT kernel for prefill, the recurrent one for short prefills, decode
# and verify; one source for OpenCL and CUDA, checked by the OpenCL delta-rule tests on PoCL, so these need an OpenCL
# runtime; the million-token test is left out to keep each run short)

mutation delta-gpu-chunked-diagonal \
  kernels/deltarule/delta_chunk_prepare.h 'FullyQualifiedName~OpenClDeltaRuleTests&FullyQualifiedName!~MillionTokens' \
  'GPU chunked delta rule drops the diagonal of the intra-chunk scores P (causal mask s < t, DeltaNet and Gated DeltaNet): o_t misses its own corrected value u_t' \
  'for (int u = t; u < l; u++) a_row[u] += kt * qf[u];' \
  'for (int u = t + 1; u < l; u++) a_row[u] += kt * qf[u];'

mutation delta-gpu-chunked-l2norm-eps \
  kernels/deltarule/delta_chunk_prepare.h 'FullyQualifiedName~OpenClDeltaRuleTests&FullyQualifiedName!~MillionTokens' \
  'GPU chunked delta rule L2-normalises the queries without the epsilon, x / |x| (unseen at magnitude 1, 10% off at 0.001)' \
  'q_factor = NA_DELTA_RSQRT(qq + NA_DELTA_L2_EPS);' \
  'q_factor = NA_DELTA_RSQRT(qq);'

mutation delta-gpu-chunked-state-decay \
  kernels/deltarule/delta_chunk_prepare.h 'FullyQualifiedName~OpenClDeltaRuleTests&FullyQualifiedName!~MillionTokens' \
  'GPU chunked delta rule decays the carried state by the cumulative gate b_t of the work-item writing the decays instead of the last one of the chunk, b_L' \
  'p.gate == 1 ? na_delta_decay(blast) : 1.0f;' \
  'p.gate == 1 ? na_delta_decay(bt) : 1.0f;'

mutation delta-gpu-chunked-solve \
  kernels/deltarule/delta_chunk_prepare.h 'FullyQualifiedName~OpenClDeltaRuleTests&FullyQualifiedName!~MillionTokens' \
  'GPU chunked delta rule starts the forward substitution one column late (s = j + 2): T misses A[r][j+1] T[j+1][j], from the second sub-diagonal of the UT inverse on' \
  'for (int s = j + 1; s < r; s++) x -= m[r * NA_DELTA_LDM + s] * m[j * NA_DELTA_LDM + s];' \
  'for (int s = j + 2; s < r; s++) x -= m[r * NA_DELTA_LDM + s] * m[j * NA_DELTA_LDM + s];'

mutation delta-gpu-recurrent-key-head \
  kernels/deltarule/delta_recurrent.h 'FullyQualifiedName~OpenClDeltaRuleTests&FullyQualifiedName!~MillionTokens' \
  'GPU recurrent delta rule (decode, verify, short prefills) maps output heads to key heads by modulo instead of by group (GQA indexing)' \
  'const na_i64 k_base = p.qkvo.k_offset + b * p.qkvo.k_stride_b + (h / p.group_k) * p.qkvo.k_stride_h;' \
  'const na_i64 k_base = p.qkvo.k_offset + b * p.qkvo.k_stride_b + (h % (p.heads / p.group_k)) * p.qkvo.k_stride_h;'

mutation delta-gpu-chunked-tb-beta \
  kernels/deltarule/delta_chunk_prepare.h 'FullyQualifiedName~OpenClDeltaRuleTests&FullyQualifiedName!~MillionTokens' \
  'GPU chunked delta rule forms Tb = T diag(beta) with the row token'"'"'s beta (diag(beta) T): Tb and W go wrong wherever beta varies inside a chunk' \
  'const float x = m[s * NA_DELTA_LDM + t] * bv[s];' \
  'const float x = m[s * NA_DELTA_LDM + t] * bv[t];'

mutation delta-gpu-chunked-kda-last \
  kernels/deltarule/delta_chunk_prepare.h 'FullyQualifiedName~OpenClDeltaRuleTests&FullyQualifiedName!~MillionTokens' \
  'GPU chunked KDA decays the keys of the state update to the end of a full chunk (row chunk - 1, never summed in a short last chunk) instead of its last token' \
  'na_delta_decay(gs[f * NA_DELTA_LDT + l - 1] - g)' \
  'na_delta_decay(gs[f * NA_DELTA_LDT + chunk - 1] - g)'

mutation delta-gpu-chunked-update-last \
  kernels/deltarule/delta_chunked.h 'FullyQualifiedName~OpenClDeltaRuleTests&FullyQualifiedName!~MillionTokens' \
  'GPU chunked delta rule leaves the last token of every chunk out of the state update (K^T U summed over s < l - 1)' \
  'for (int s = 0; s < l; s++)' \
  'for (int s = 0; s < l - 1; s++)'

mutation delta-gpu-kda-sub-reference \
  kernels/deltarule/delta_chunk_prepare.h 'FullyQualifiedName~OpenClDeltaRuleTests&FullyQualifiedName!~MillionTokens' \
  'GPU chunked KDA decays the keys of earlier sub-chunks to the token before a sub-chunk'"'"'s start (B_(c-1)) while the left factor takes them from its start (B_c): every cross-sub-chunk pair misses the decay of token c' \
  'xs[at + e] = ks[f * NA_DELTA_LDT + s] * na_delta_decay(gs[f * NA_DELTA_LDT + ci] - gs[f * NA_DELTA_LDT + s]);' \
  'xs[at + e] = ks[f * NA_DELTA_LDT + s] * na_delta_decay(gs[f * NA_DELTA_LDT + ci - 1] - gs[f * NA_DELTA_LDT + s]);'

mutation delta-gpu-kda-sub-layout \
  kernels/deltarule/delta_chunk_prepare.h 'FullyQualifiedName~OpenClDeltaRuleTests&FullyQualifiedName!~MillionTokens' \
  'GPU chunked KDA reads the staged decayed keys of earlier sub-chunks feature-minor ([s][f]) where they were written token-minor ([f][s]): A and P across sub-chunks mix tokens and key dimensions' \
  'const float y = x[f * ci + s];' \
  'const float y = x[s * NA_DELTA_FB + f];'
# --- GPU flex (managed/NativeAttention.Ilgpu/Flex/Gpu/FlexKernels.cs: C# kernels ILGPU compiles to OpenCL C and PTX;
# checked by the flex OpenCL tests of the ILGPU test project on PoCL, so these need an OpenCL runtime)

mutation flex-gpu-full-off-by-one \
  managed/NativeAttention.Ilgpu/Flex/Gpu/FlexKernels.cs 'tests/NativeAttention.Ilgpu.Tests::FullyQualifiedName~FlexOpenClTests.Causal|FullyQualifiedName~FlexOpenClTests.FullBlocks' \
  'GPU flex takes the first partial block of a row for a full one (off by one at the full/partial boundary): its mask is skipped' \
  'bool full = entry < partialStart;' \
  'bool full = entry <= partialStart;'

mutation flex-gpu-sum-unrescaled \
  managed/NativeAttention.Ilgpu/Flex/Gpu/FlexKernels.cs 'tests/NativeAttention.Ilgpu.Tests::FullyQualifiedName~FlexOpenClTests.Causal|FullyQualifiedName~FlexOpenClTests.FullBlocks' \
  'GPU flex online softmax forgets to rescale the running sum when the row max grows (l + sum instead of l * alpha + sum)' \
  'l = l * alpha + sum;' \
  'l = l + sum;'

mutation flex-gpu-classify-ragged \
  managed/NativeAttention.Ilgpu/Flex/Gpu/FlexKernels.cs 'tests/NativeAttention.Ilgpu.Tests::FullyQualifiedName~FlexOpenClTests.CreateBlockMask_' \
  'GPU CreateBlockMask counts the keys past Nk in a ragged last key block (a padding-masked last block becomes partial, not full)' \
  'int rows = IntrinsicMath.Min(a.QueryBlockSize, a.Nq - q0), cols = IntrinsicMath.Min(a.KeyBlockSize, a.Nk - k0);' \
  'int rows = IntrinsicMath.Min(a.QueryBlockSize, a.Nq - q0), cols = a.KeyBlockSize;'
# --- CPU Flex attention (Cpu/Flex/CpuFlex.cs; the Flex tests live in NativeAttention.Ilgpu.Tests, hence PROJECT::FILTER)

mutation flex-partial-as-full \
  managed/NativeAttention/Cpu/Flex/CpuFlex.cs 'tests/NativeAttention.Ilgpu.Tests::FullyQualifiedName~CpuFlexTests' \
  'CPU flex runs a tile mixing full and partial blocks as full: the mask modification is skipped on partial blocks' \
  'allFull &= kind == Full;' \
  'allFull &= kind != Empty;'

mutation flex-score-log2-units \
  managed/NativeAttention/Cpu/Flex/CpuFlex.cs 'tests/NativeAttention.Ilgpu.Tests::FullyQualifiedName~CpuFlexTests' \
  'CPU flex hands the score modification log2-unit scores (the kernel'"'"'s units) instead of natural-log ones, and keeps its result as log2' \
  '*e = mod.Score(*e * MathConstants.Ln2, batch, head, query, k0 + j) * MathConstants.Log2E;' \
  '*e = mod.Score(*e, batch, head, query, k0 + j);'

mutation flex-vector-tail \
  managed/NativeAttention/Cpu/Flex/CpuFlex.cs 'tests/NativeAttention.Ilgpu.Tests::FullyQualifiedName~CpuFlexTests' \
  'CPU flex calls the vector score form on whole 8-column runs only: the last columns of a group of odd size miss the modification' \
  'for (int v = 0; v < real; v += 8)' \
  'for (int v = 0; v + 8 <= real; v += 8)'

mutation flex-mask-head-modulo \
  managed/NativeAttention/Cpu/Flex/CpuFlex.cs 'tests/NativeAttention.Ilgpu.Tests::FullyQualifiedName~CpuFlexTests' \
  'CPU flex maps query head h to block-mask head h % MaskHeads instead of h / (Hq / MaskHeads) (per-GQA-group masks)' \
  'int h = head / HeadsPerMaskHead;' \
  'int h = head % MaskHeads;'

mutation scratch-take-keeps-upload \
  managed/NativeAttention/Gpu/GpuScratch.cs 'FullyQualifiedName~GpuScratchTests.Upload_' \
  'a scratch slot taken for kernel output still vouches for its last upload: a later identical upload (block table, extents) is skipped and the kernel reads what another family wrote there' \
  '        _uploaded[slot] = null;
        return buffer;' \
  '        return buffer;'
# --- OpenCL 32 KB variants (kernels/decode/decode_fwd.h with NA_DECODE_KV_SHARED, Gpu/Neighborhood/NeighborhoodVariant.cs
# small tiles): chosen on a pretend 32 KB context by the OpenCL tests on PoCL; without an OpenCL runtime they skip and
# the mutations read NOT CAUGHT.

mutation ocl32k-decode-v-over-k \
  kernels/decode/decode_fwd.h 'FullyQualifiedName~OpenClKvCacheTests.KvCache_On32KLocalMemory' \
  'GPU decode, 32 KB variant: V is staged with K although they share one buffer, so it overwrites K before the scores read it' \
  '#if !NA_DECODE_KV_SHARED   // V has its own buffer: staged together with K' \
  '#if 1   // V has its own buffer: staged together with K'

mutation ocl32k-nbh-local-bytes \
  managed/NativeAttention/Gpu/Neighborhood/NeighborhoodVariant.cs 'FullyQualifiedName~OpenClNeighborhoodTests.Neighborhood_On32KLocalMemory|FullyQualifiedName~OpenClNeighborhoodTests.NeighborhoodKernels_Declare' \
  'GPU neighborhood: the host counts one float tile per key instead of K and V, so it takes the plain D = 128/256 kernel (33 KB) for one that fits 32 KB' \
  'public int LocalBytes => TensorCores ? DynamicSharedBytes : Tiles.BlockN * (2 * HeadDim * sizeof(float) + 3 * sizeof(int) + 2 * sizeof(long));' \
  'public int LocalBytes => TensorCores ? DynamicSharedBytes : Tiles.BlockN * (HeadDim * sizeof(float) + 3 * sizeof(int) + 2 * sizeof(long));'
# --- CPU neighborhood, P V over each query column's window columns (NeighborhoodKernels.AccumulateWindows and its
# caller: 2-D, 4 x 4 boxes, one query head per key/value head, Dv 16 or 32, 512-bit vectors)

mutation nbh-window-first-column \
  managed/NativeAttention/Cpu/Neighborhood/NeighborhoodKernels.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood window P V: the key columns every query column of a box sees end one early (a step-0 window and the middle run of a step-1 window miss their last column)' \
  'int fullFirst = 3 * step, fullEnd = windowColumns;' \
  'int fullFirst = 3 * step, fullEnd = windowColumns - 1;'

mutation nbh-window-second-row \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood window P V takes the key rows of an 8-row block from its first query row only (the second misses its last row)' \
  'high = (int)Math.Max(rowEnd[first], rowEnd[first + 4]) - tileRow;' \
  'high = (int)rowEnd[first] - tileRow;'

mutation nbh-window-half-row \
  managed/NativeAttention/Cpu/Neighborhood/NeighborhoodKernels.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood window P V: the second query row of an 8-row block takes its first key row as one only the first query row sees (its updates skipped)' \
  'bool seenA = r >= firstA && r < endA, seenB = r >= firstB && r < endB;' \
  'bool seenA = r >= firstA && r < endA, seenB = r > firstB && r < endB;'

mutation nbh-window-unequal-lengths \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood window P V accepts a box whose query columns have windows of different lengths (causal, padding) as equal' \
  'linear &= starts[x + i * dilation] == start + i * step && counts[x + i * dilation] == count;' \
  'linear &= starts[x + i * dilation] == start + i * step;'

mutation nbh-columns-vector-end-key \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood per-column tables, four columns at a time: the key-box index range ends at the last visible key instead of one past it' \
  'var last01 = Vector128.Create(t.LastKey[i0] + t.LastKey[i1] + 1);' \
  'var last01 = Vector128.Create(t.LastKey[i0] + t.LastKey[i1]);'

# --- Flex view bounds checks on CUDA and OpenCL (Flex/Gpu/FlexViewChecks.cs; PoCL tests)

mutation flex-view-check-off-by-one \
  managed/NativeAttention.Ilgpu/Flex/Gpu/FlexViewChecks.cs 'tests/NativeAttention.Ilgpu.Tests::FullyQualifiedName~FlexViewCheckTests' \
  'The device view check lets a modification read one element past the end of a view (index == length taken as in range)' \
  'if ((ulong)index < (ulong)length) return ref view[index];' \
  'if ((ulong)index <= (ulong)length) return ref view[index];'

mutation flex-view-check-signed \
  managed/NativeAttention.Ilgpu/Flex/Gpu/FlexViewChecks.cs 'tests/NativeAttention.Ilgpu.Tests::FullyQualifiedName~FlexViewCheckTests' \
  'The device view check compares signed indices: a negative index reads before the view unreported' \
  'if ((ulong)index < (ulong)length) return ref view[index];' \
  'if (index < length) return ref view[index];'

mutation flex-view-check-no-flush \
  managed/NativeAttention.Ilgpu/Flex/Gpu/FlexViewChecks.cs 'tests/NativeAttention.Ilgpu.Tests::FullyQualifiedName~FlexViewCheckTests' \
  'A work-group'"'"'s failure record never reaches the device error buffer (the flush checks the buffer length off by one)' \
  'if (record[0] != 0 && errors.Length >= RecordInts && Atomic.CompareExchange(ref errors[0], 0, 1) == 0)' \
  'if (record[0] != 0 && errors.Length > RecordInts && Atomic.CompareExchange(ref errors[0], 0, 1) == 0)'

mutation nbh-tile-tables-key-extent \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood reuses a worker'"'"'s tile tables across items whose key boxes differ in extent (padding: samples of different extents) because the key leaves the extent out' \
  'same &= key[4 + a] == extent[a] && key[7 + a] == keyStrides[a] && key[10 + a] == valueStrides[a];' \
  'same &= key[7 + a] == keyStrides[a] && key[10 + a] == valueStrides[a];'

mutation nbh-tile-tables-key-first \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood reuses a worker'"'"'s tile tables for the next key tile of the same item (the key leaves out the tile'"'"'s first key)' \
  'bool same = key[0] == 1 && key[1] == k0 && key[2] == real && key[3] == keys;' \
  'bool same = key[0] == 1 && key[2] == real && key[3] == keys;'
mutation nbh-mask-table-end-bound \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood reuses a kept mask table for a vector whose windows start where the table'"'"'s did but end elsewhere (the lookup compares the start bounds only)' \
  'same &= Vector512.Load(start + a * maxColumns) == Vector512.Load(bounds + 2 * a * w)
                    && Vector512.Load(end + a * maxColumns) == Vector512.Load(bounds + (2 * a + 1) * w);' \
  'same &= Vector512.Load(start + a * maxColumns) == Vector512.Load(bounds + 2 * a * w);'

mutation nbh-mask-table-stale \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood keeps its mask tables when the tile tables are rebuilt for another key box (tables built for the old key coordinates)' \
  's.MaskCount[0] = 0; // the mask tables are functions of the coordinates too' \
  '// the mask tables kept across a rebuild of the tile tables'
mutation nbh-pair-rows-end \
  managed/NativeAttention/Cpu/Neighborhood/NeighborhoodKernels.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'CPU neighborhood: a mask table'"'"'s key range ends at its last visible key rounded down to a key block instead of up, so a border pair of vectors leaves its last visible keys uncomputed (-inf)' \
  'return (low / KeyBlock * KeyBlock, Math.Min(keyCount, (end + KeyBlock - 1) / KeyBlock * KeyBlock));' \
  'return (low / KeyBlock * KeyBlock, Math.Min(keyCount, end / KeyBlock * KeyBlock));'

# --- CPU neighborhood, banded 1-D kernel (Cpu/Neighborhood/Neighborhood1D.cs)

mutation nbh1d-window-even-kernel \
  managed/NativeAttention/Cpu/Neighborhood/Neighborhood1D.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'Banded 1-D CPU kernel: the non-causal window centres an even kernel on the wrong side ((k-1)/2 keys left instead of k/2)' \
  'int start = Math.Clamp(i - kernel / 2, 0, length - kernel);' \
  'int start = Math.Clamp(i - (kernel - 1) / 2, 0, length - kernel);'

mutation nbh1d-pair-any-diagonals \
  managed/NativeAttention/Cpu/Neighborhood/Neighborhood1D.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'Banded 1-D CPU kernel: two full blocks share key loads without checking that the second has the same diagonals (border blocks paired)' \
  '&& (Interior(i0 + Lanes, Lanes, length, kernel, causal) ? (0, kernel) : BlockDiagonals(i0 + Lanes, length, kernel, causal, d0)) == (jLow, jHigh);' \
  ';'

mutation nbh1d-quad-union-start \
  managed/NativeAttention/Cpu/Neighborhood/Neighborhood1D.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'Banded 1-D CPU kernel: the P V of a quad of queries starts at its last query'"'"'s window instead of the union'"'"'s (first query'"'"'s) start' \
  'int uLow = windowStart[l0], uHigh = windowEnd[lastLane];' \
  'int uLow = windowStart[lastLane], uHigh = windowEnd[lastLane];'

mutation nbh1d-chain-run-end \
  managed/NativeAttention/Cpu/Neighborhood/Neighborhood1D.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'Banded 1-D CPU kernel: at k 33 a chain computes diagonal 32 alone for the wrong block at the run end (third-to-last instead of second-to-last: no link to a block after the last gives it)' \
  'else if (kernel > 2 * Lanes && b == blocks - 2) DiagonalsTail<One>(' \
  'else if (kernel > 2 * Lanes && b == blocks - 3) DiagonalsTail<One>('

mutation nbh1d-group-length-floor \
  managed/NativeAttention/Cpu/Neighborhood/Neighborhood1D.cs 'FullyQualifiedName~CpuNeighborhoodTests.Neighborhood_OneDimensional' \
  'Banded 1-D CPU kernel: a dilation group'"'"'s length is taken as the floor of (N - g) / d, so with N not a multiple of d the first N mod d groups lose their last query (its output row and LSE never written)' \
  'int groupLength = (extent - g + Dilation - 1) / Dilation;' \
  'int groupLength = (extent - g) / Dilation;'

mutation nbh1d-unit-chunks-floor \
  managed/NativeAttention/Cpu/Neighborhood/Neighborhood1D.cs 'FullyQualifiedName~CpuNeighborhoodTests.Neighborhood_OneDimensional' \
  'Banded 1-D CPU kernel: the chunk-by-chunk item list (units of a chunk'"'"'s groups) bounds its chunks by floor(N / d) queries instead of the longest group'"'"'s ceil(N / d), so when that is one past a whole chunk the longer groups lose their last query' \
  'for (int first = 0; first < (extent + Dilation - 1) / Dilation; first += ChunkQueries)' \
  'for (int first = 0; first < extent / Dilation; first += ChunkQueries)'

mutation nbh1d-softmax-mask-skipped \
  managed/NativeAttention/Cpu/Neighborhood/Neighborhood1D.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'Banded 1-D CPU kernel: the softmax takes every block as interior and skips the mask, so a border block'"'"'s lanes keep the scores of diagonals outside their windows' \
  'var (max, sum) = MaskAndSoftmax(scores, diagonals, jLow, s.DiagonalStart, s.DiagonalEnd, interior);' \
  'var (max, sum) = MaskAndSoftmax(scores, diagonals, jLow, s.DiagonalStart, s.DiagonalEnd, true);'

mutation nbh1d-values-in-place-stride \
  managed/NativeAttention/Cpu/Neighborhood/Neighborhood1D.cs 'FullyQualifiedName~CpuNeighborhoodTests' \
  'Banded 1-D CPU kernel: P V reads the value rows in place Dv floats apart, as in the padded copy, instead of the group'"'"'s row step (wrong rows at dilation > 1 or with strided rows)' \
  'int valueRowStride = inPlace ? (int)vStep : dvStride;' \
  'int valueRowStride = dvStride;'

mutation linear-plan-reuse-next-item \
  managed/NativeAttention/Cpu/Linear/CpuLinear.cs 'FullyQualifiedName~CpuLinear' \
  'CPU linear kernel: a plan kept from the previous call on this thread keeps its item counter (no work is claimed after the first call)' \
  'NextItem = 0;' \
  '/* NextItem kept */'

mutation linear-plan-reuse-decay \
  managed/NativeAttention/Cpu/Linear/CpuLinear.cs 'FullyQualifiedName~CpuLinear' \
  'CPU linear kernel: a kept plan refills the per-head decays only into entries still zero (stale decays from the previous call with the same head count)' \
  'for (int h = 0; h < decay.Length; h++) HeadLog2Decay[h] = decay[h] * Log2E;' \
  'for (int h = 0; h < decay.Length; h++) if (HeadLog2Decay[h] == 0) HeadLog2Decay[h] = decay[h] * Log2E;'

mutation delta-plan-reuse-next-item \
  managed/NativeAttention/Cpu/DeltaRule/CpuDeltaRule.cs 'FullyQualifiedName~CpuDeltaRule' \
  'CPU delta-rule kernel: a plan kept from the previous call on this thread keeps its item counter' \
  'NextItem = 0;' \
  '/* NextItem kept */'

mutation pool-alloc-count-missing \
  managed/NativeAttention/Cpu/CpuWorkers.cs 'FullyQualifiedName~AllocationMeterTests|FullyQualifiedName~CpuAllocationTests' \
  'CPU worker pool: a pool thread does not record its allocated bytes after a job (the allocation tests would see only the calling thread)' \
  'Volatile.Write(ref s_allocated[index], GC.GetAllocatedBytesForCurrentThread());' \
  '/* not recorded */'
# --- steady-state reuse (per-thread problems and kept CPU plans; caught by AllocationTests.SteadyStateCall_ReadsChangedInputs,
#     which overwrites the inputs in place between calls on the same buffers)

mutation neighborhood-plan-reuse-bias \
  managed/NativeAttention/Cpu/Neighborhood/CpuNeighborhood.cs 'FullyQualifiedName~CpuAllocationTests.SteadyStateCall_ReadsChangedInputs' \
  'CPU neighborhood box kernel: a plan kept from the previous call on the same buffers keeps its copy of the relative-position bias (the caller changed it in place)' \
  'if (problem.Options.RelativePositionBias is { } rpb) ReadBias(rpb, idle._bias!);' \
  '/* bias copy kept from the previous call */'

mutation flash-score-plan-stale-softcap \
  managed/NativeAttention/Cpu/Flash/ScoreOptionPlan.cs 'FullyQualifiedName~CpuFlash' \
  'CPU flash score options: a plan kept from the previous call on this thread keeps its softcap when the next call has none' \
  '(Softcap, SoftcapIn, SoftcapOut) = (false, 0, 0);' \
  '/* softcap kept */'

mutation cpu-empty-rows-not-written \
  managed/NativeAttention/Cpu/CpuContext.cs 'FullyQualifiedName~CpuVarlenTests' \
  'CPU varlen: the output rows of a sequence without keys are left as they were instead of zeroed' \
  'if (zeroBits) new Span<byte>(element, size).Clear();' \
  'if (zeroBits) { }'

# --- steady-state reuse without allocation: per-sequence ALiBi rows, GPU rows without keys, whole-grid neighborhoods

mutation varlen-alibi-row-decode-stale \
  managed/NativeAttention/Families/Decode/KvCacheProblem.cs 'FullyQualifiedName~CpuVarlenTests.Varlen_PerSequenceAlibi' \
  'Flash routed to decode: the thread'"'"'s reused decode problem keeps its ALiBi row (never refreshed from the flash problem), so decode-shaped varlen sequences read row 0 of [B, Hq] slopes' \
  '(p.Options, p.Cache, p.IsFlashCall, p.AlibiRow) = (flash.Options, s_flashCache, true, flash.AlibiRow);' \
  '(p.Options, p.Cache, p.IsFlashCall) = (flash.Options, s_flashCache, true);'

mutation varlen-alibi-row-flash \
  managed/NativeAttention/Cpu/Flash/ScoreOptionPlan.cs 'FullyQualifiedName~CpuVarlenTests.Varlen_PerSequenceAlibi' \
  'CPU flash score options: a varlen sequence'"'"'s slopes are read from the first row of [B, Hq] ALiBi slopes (the sequence'"'"'s row offset not applied)' \
  'float* first = (float*)pin.Pointer + slopes.Offset + problem.AlibiRowOffset(slopes);' \
  'float* first = (float*)pin.Pointer + slopes.Offset;'

mutation gpu-empty-rows-run-axis \
  managed/NativeAttention/Gpu/GpuContext.cs 'FullyQualifiedName~OpenClVarlenTests.Varlen_SequenceWithoutKeys' \
  'GPU rows without keys: the fill steps the run axis too when it walks a strided view'"'"'s runs (the LSE columns of a sequence), so some heads keep stale values' \
  'if (a == run) continue;' \
  '/* run axis stepped too */'

mutation nbh-whole-grid-stale-options \
  managed/NativeAttention/Families/Neighborhood/WholeGridFlash.cs 'FullyQualifiedName~CpuAllocationTests.SteadyWholeGridNeighborhood' \
  'Whole-grid neighborhood: the kept flash options are reused when the scale matches, whatever the causal flag (a causal call after a non-causal one runs non-causal)' \
  'o.Scale == problem.Scale && o.Causal == causal' \
  'o.Scale == problem.Scale'

mutation kvcache-element-view-offset \
  managed/NativeAttention/Families/Decode/KvCacheProblem.cs 'FullyQualifiedName~OpenClKvCacheTests.KvCache_PrefillShaped' \
  'FlashKvCache run as flash per batch element (GPUs, prefill-shaped): the kept element views start at element 0 for every batch element' \
  'return new TensorView(tensor.Storage!, shape, strides, tensor.Offset + batch * strides[0], adopt: true);' \
  'return new TensorView(tensor.Storage!, shape, strides, tensor.Offset, adopt: true);'

mutation exp2-nan-dropped \
  managed/NativeAttention/Cpu/Simd/Simd512.cs 'FullyQualifiedName~Exp2Tests' \
  'Exp2NonPositive (AVX-512): the clamp takes the floor when x is NaN (vmaxps returns its second operand), so a NaN score gets the weight 2^-126 instead of NaN' \
  'x = Avx512F.Max(floor, x);' \
  'x = Avx512F.Max(x, floor);'

mutation exp2-floor-inclusive \
  managed/NativeAttention/Cpu/Simd/Simd256.cs 'FullyQualifiedName~Exp2Tests' \
  'Exp2NonPositive (256-bit): 2^-126 itself, the smallest normal result, flushed to 0 with the tiny ones' \
  'var tiny = Vector256.LessThan(x, floor);' \
  'var tiny = Vector256.LessThanOrEqual(x, floor);'

# --- binary16 output rounding (Cpu/Simd/HalfNarrowing.cs: every CPU kernel's binary16 rows)

mutation half-narrow-ties-away \
  managed/NativeAttention/Cpu/Simd/HalfNarrowing.cs "FullyQualifiedName~CpuPackingTests" \
  'Binary16 outputs round ties away from zero (the lowest kept bit no longer added), in the vector path' \
  'var normal = Vector256.ShiftRightLogical(a + Vector256.Create(Rebias) + (Vector256.ShiftRightLogical(a, 13) & Vector256<uint>.One), 13);' \
  'var normal = Vector256.ShiftRightLogical(a + Vector256.Create(Rebias) + Vector256<uint>.One, 13);'

mutation half-narrow-overflow-low \
  managed/NativeAttention/Cpu/Simd/HalfNarrowing.cs "FullyQualifiedName~CpuPackingTests" \
  'Binary16 outputs send the largest finite value (65504) and what rounds to it to infinity (overflow bound one step low), in the scalar path' \
  ': a >= Overflow ? 0x7C00u' \
  ': a >= Overflow - 0x1000u ? 0x7C00u'

mutation half-narrow-subnormal \
  managed/NativeAttention/Cpu/Simd/HalfNarrowing.cs "FullyQualifiedName~CpuPackingTests" \
  'Binary16 outputs below 2^-14 are rounded as normals (the subnormal range starts one binade low), in the vector path' \
  'var bits = Vector256.ConditionalSelect(Vector256.LessThan(a, Vector256.Create(MinNormal)), subnormal, normal);' \
  'var bits = Vector256.ConditionalSelect(Vector256.LessThan(a, Vector256.Create(MinNormal - 0x0080_0000u)), subnormal, normal);'

# --- binary16 at small magnitudes on the GPU backends' kernels (kernels/common/dtype.h: every OpenCL and CUDA load and
# store of a binary16 tensor). Caught by the small-input properties (keys and values at 0.01 and 0.001, queries at the
# inverse), which every backend runs: at magnitude 1 a subnormal is 6 values in 10^5 and moves no output past tolerance.

mutation opencl-half-load-flush \
  kernels/common/dtype.h 'Backend=OpenCl&FullyQualifiedName!~MillionTokens' \
  'OpenCL binary16 loads flush subnormal halves to zero (a denormals-are-zero conversion)' \
  'NA_INLINE float na_load(const NA_GLOBAL na_elem* p, na_i64 i) { return vload_half((size_t)i, p); }' \
  'NA_INLINE float na_load(const NA_GLOBAL na_elem* p, na_i64 i) { float f = vload_half((size_t)i, p); return fabs(f) < 6.103515625e-5f ? 0.0f : f; }'

mutation opencl-half-store-flush \
  kernels/common/dtype.h 'Backend=OpenCl&FullyQualifiedName!~MillionTokens' \
  'OpenCL binary16 stores flush results below the normal range to zero (a flush-to-zero narrowing)' \
  'NA_INLINE void na_store(NA_GLOBAL na_elem* p, na_i64 i, float v) { vstore_half_rte(v, (size_t)i, p); }' \
  'NA_INLINE void na_store(NA_GLOBAL na_elem* p, na_i64 i, float v) { vstore_half_rte(fabs(v) < 6.103515625e-5f ? 0.0f : v, (size_t)i, p); }'
