# PyTorch scaled_dot_product_attention over the same shapes as `NativeAttention.GpuBench cuda-bench`, same FLOP count.
import sys
import torch
import torch.nn.functional as F

quick = "--quick" in sys.argv
print(f"# PyTorch {torch.__version__} scaled_dot_product_attention on {torch.cuda.get_device_name()}")
print("| dtype | B | H | D | N | causal | ms | TFLOP/s |")
print("|---|---|---|---|---|---|---|---|")
B, H = 4, 16
for dtype, name in ((torch.float16, "fp16"), (torch.bfloat16, "bf16")):
    for d in (64, 128):
        for n in ((1024,) if quick else (1024, 4096, 16384)):
            for causal in (False, True):
                q, k, v = (torch.rand(B, H, n, d, device="cuda", dtype=dtype) * 2 - 1 for _ in range(3))
                F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                torch.cuda.synchronize()
                pairs = n * (n + 1) / 2 if causal else n * n
                flops = 4.0 * d * pairs * B * H
                iters = max(3, min(200, int(2e13 / flops)))
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(iters):
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                end.record()
                torch.cuda.synchronize()
                ms = start.elapsed_time(end) / iters
                print(f"| {name} | {B} | {H} | {d} | {n} | {causal} | {ms:.3f} | {flops / ms / 1e9:.1f} |")
