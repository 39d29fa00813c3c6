#!/bin/bash
# One GPU-machine session over a device bundle
#   (../shared/tools/device-bundle.sh tests/NativeAttention.Tests tests/NativeAttention.Ilgpu.Tests bench/NativeAttention.GpuBench bench/NativeAttention.Cli):
# every CUDA test (flash, varlen, KV cache, decode routing, merge, neighborhood, block-sparse, linear, the peak probe,
# the CUBIN checks), the GPU's measured peaks (`info`), the flash benchmark per tile in $TILES, the other families'
# case files (bench/cases/*.json) on CUDA, and PyTorch SDPA when TORCH=1. Results go to $OUT. The flash suites and
# benchmark also run with NATIVEATTENTION_CUDA_WGMMA=1 and =0 (the Hopper kernel forced on and off; WGMMA_TESTS=0 and
# WGMMA=0 skip those runs).
#   bash .device/NativeAttention.GpuBench/run-device.sh            (TESTS=0 skips tests, QUICK=--quick for N = 1024 only,
#   DECODE=1 adds FlashKvCache decode and the issue-4 shapes, BENCH=0 runs the tests only)
bundle=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$bundle/env.sh"
OUT=${OUT:-/tmp/na-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv > "$OUT/gpu.txt"
NV=$(ls /usr/local/cuda*/targets/x86_64-linux/lib/libnvrtc.so.* /usr/local/cuda*/lib64/libnvrtc.so.* 2>/dev/null | grep -v -e builtins -e stubs | sort -V | tail -1)
echo "nvrtc: $NV" >> "$OUT/gpu.txt"
export NATIVEATTENTION_NVRTC_PATH="$NV" NATIVEATTENTION_CACHE_DIR=/tmp/na-cache NATIVEATTENTION_REQUIRE=cuda,nvrtc
if [ "${TESTS:-1}" = 1 ]; then
  timeout ${TEST_TIMEOUT:-360} bash -c "source $bundle/env.sh; xunit $bundle/NativeAttention.Tests/NativeAttention.Tests.dll ${TESTARGS:--trait Backend=Cuda} -parallel none" > "$OUT/tests.txt" 2>&1
  echo "tests rc=$?" >> "$OUT/tests.txt"
fi
# The CUDA flash property suites again with the Hopper wgmma kernel forced on (no self-check, so a wrong kernel fails
# loudly) and forced off (mma.sync on sm_90); the first run above used the default (wgmma after its self-check).
# WgmmaFlashTests (in the -trait Backend=Cuda run) already compares both kernels with the reference on sm_90.
if [ "${TESTS:-1}" = 1 ] && [ "${WGMMA_TESTS:-1}" = 1 ]; then
  for w in 1 0; do
    NATIVEATTENTION_CUDA_WGMMA=$w timeout ${TEST_TIMEOUT:-360} bash -c "source $bundle/env.sh; xunit $bundle/NativeAttention.Tests/NativeAttention.Tests.dll -class NativeAttention.Tests.CudaFlashTests -class NativeAttention.Tests.CudaFlashOptionTests -parallel none" > "$OUT/tests_wgmma$w.txt" 2>&1
    echo "tests rc=$?" >> "$OUT/tests_wgmma$w.txt"
  done
fi
# The ILGPU tests' CUDA classes (Flex with view fields, both Flex kernels with the self-check and the view checks, ILGPU CUDA interop), when the bundle holds tests/NativeAttention.Ilgpu.Tests.
ilgpu_tests="$bundle/NativeAttention.Ilgpu.Tests/NativeAttention.Ilgpu.Tests.dll"
if [ "${TESTS:-1}" = 1 ] && [ -f "$ilgpu_tests" ]; then
  timeout ${TEST_TIMEOUT:-360} bash -c "source $bundle/env.sh; xunit $ilgpu_tests -class NativeAttention.Ilgpu.Tests.Flex.CudaFlexViewTests -class NativeAttention.Ilgpu.Tests.Flex.FlexIlgpuCudaTests -class NativeAttention.Ilgpu.Tests.Interop.IlgpuCudaTests -class NativeAttention.Ilgpu.Tests.FlexOnGpu.FlexCudaTests -parallel none" > "$OUT/ilgpu-tests.txt" 2>&1
  echo "tests rc=$?" >> "$OUT/ilgpu-tests.txt"
fi
# BENCH=0 stops after the tests: a lent GPU allows 10 minutes per command, so run the tests in one call
# (BENCH=0) and the benchmarks in the next (TESTS=0); every result file is written as soon as its step ends.
[ "${BENCH:-1}" = 1 ] || exit 0
for t in ${TILES:-default}; do
  if [ "$t" = default ]; then unset NATIVEATTENTION_FLASH_MMA_TILE; else export NATIVEATTENTION_FLASH_MMA_TILE=$t; fi
  timeout 200 dotnet "$bundle/NativeAttention.GpuBench/NativeAttention.GpuBench.dll" cuda-bench ${QUICK:-} > "$OUT/na_${t//,/_}.txt" 2>&1
done
unset NATIVEATTENTION_FLASH_MMA_TILE
# Flash with the Hopper wgmma kernel forced on and off (on sm_90; elsewhere both runs are the mma.sync kernel), next to
# the default run above and PyTorch SDPA (TORCH=1) on the same shapes.
if [ "${WGMMA:-1}" = 1 ]; then
  for w in 1 0; do
    NATIVEATTENTION_CUDA_WGMMA=$w timeout 200 dotnet "$bundle/NativeAttention.GpuBench/NativeAttention.GpuBench.dll" cuda-bench ${QUICK:-} > "$OUT/na_wgmma$w.txt" 2>&1
  done
fi
# The CLI, when bundled: the GPU's peaks from the probe kernels, then every family's case file on CUDA (% of those peaks).
cli="$bundle/NativeAttention.Cli/NativeAttention.Cli.dll"
if [ -f "$cli" ]; then
  timeout 120 dotnet "$cli" info > "$OUT/info.txt" 2>&1
  if [ "${FAMILIES:-1}" = 1 ]; then
    for cases in bench/cases/*.json; do
      name=$(basename "$cases" .json)
      timeout 200 dotnet "$cli" bench --backend cuda --cases "$cases" --markdown "$OUT/bench_$name.md" > "$OUT/bench_$name.txt" 2>&1
    done
  fi
fi
if [ "${TORCH:-0}" = 1 ]; then timeout 200 python3 "$bundle/NativeAttention.GpuBench/torch_sdpa.py" ${QUICK:-} > "$OUT/torch.txt" 2>&1; fi
# DECODE=1: FlashKvCache decode and the issue-4 shapes, ours then PyTorch's (TORCH=1).
if [ "${DECODE:-0}" = 1 ]; then
  timeout 200 dotnet "$bundle/NativeAttention.GpuBench/NativeAttention.GpuBench.dll" cuda-decode ${QUICK:-} > "$OUT/na_decode.txt" 2>&1
  timeout 200 dotnet "$bundle/NativeAttention.GpuBench/NativeAttention.GpuBench.dll" cuda-shapes > "$OUT/na_shapes.txt" 2>&1
  if [ "${TORCH:-0}" = 1 ]; then timeout 200 python3 "$bundle/NativeAttention.GpuBench/torch_decode.py" ${QUICK:-} > "$OUT/torch_decode.txt" 2>&1; fi
fi
