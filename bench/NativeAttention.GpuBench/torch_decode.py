# PyTorch counterparts of `NativeAttention.GpuBench cuda-decode` and `cuda-shapes`, same shapes and byte/FLOP counts.
# Decode: scaled_dot_product_attention with one query row per head (enable_gqa for Hkv < Hq); shapes: SDPA for GQA
# and cross-attention, and a sliding window as a boolean mask (PyTorch SDPA has no window option, so its time covers
# the full N x N while the FLOPs count only visible pairs, as ours do).
import sys
import torch
import torch.nn.functional as F


def time_ms(fn, expected_s):
    fn()
    torch.cuda.synchronize()
    iters = max(3, min(2000, int(0.5 / max(expected_s, 1e-6))))
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


quick = "--quick" in sys.argv
print(f"# PyTorch {torch.__version__} decode and issue-4 shapes on {torch.cuda.get_device_name()}")
print("| dtype | B | Hq | Hkv | D | Nk | ms | GB/s |")
print("|---|---|---|---|---|---|---|---|")
B, H, D = 1, 32, 128
for dtype, name in ((torch.float16, "fp16"), (torch.bfloat16, "bf16")):
    for hkv in (32, 8):
        for nk in ((4096,) if quick else (4096, 16384)):
            q = torch.rand(B, H, 1, D, device="cuda", dtype=dtype) * 2 - 1
            k, v = (torch.rand(B, hkv, nk, D, device="cuda", dtype=dtype) * 2 - 1 for _ in range(2))
            ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=hkv != H), 2e-3 * nk / 4096)
            gbytes = 2.0 * B * hkv * nk * D * q.element_size() / 1e9
            print(f"| {name} | {B} | {H} | {hkv} | {D} | {nk} | {ms:.4f} | {gbytes / ms * 1e3:.1f} |")

print()
print("| dtype | shape | ms | TFLOP/s |")
print("|---|---|---|---|")
B, D = 4, 64
for dtype, name in ((torch.float16, "fp16"), (torch.bfloat16, "bf16")):
    for label, hq, hkv, nq, nk, causal, window in (("window256 N4096 causal H16", 16, 16, 4096, 4096, True, 256),
                                                   ("GQA 16/4 N2048 causal", 16, 4, 2048, 2048, True, None),
                                                   ("cross 256x4096 H16", 16, 16, 256, 4096, False, None)):
        q = torch.rand(B, hq, nq, D, device="cuda", dtype=dtype) * 2 - 1
        k, v = (torch.rand(B, hkv, nk, D, device="cuda", dtype=dtype) * 2 - 1 for _ in range(2))
        i = torch.arange(nq, device="cuda")[:, None] + (nk - nq)
        j = torch.arange(nk, device="cuda")[None, :]
        visible = torch.ones(nq, nk, dtype=torch.bool, device="cuda")
        if causal:
            visible &= j <= i
        if window is not None:
            visible &= j >= i - window
        pairs = int(visible.sum().item())
        flops = 4.0 * D * pairs * B * hq
        if window is not None:
            fn = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=visible)
        else:
            fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=hkv != hq)
        ms = time_ms(fn, flops / 2e14)
        print(f"| {name} | {label} | {ms:.3f} | {flops / ms / 1e9:.1f} |")
