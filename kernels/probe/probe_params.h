// Parameters of the GPU peak probes (kernels/probe/peak_probe.h); mirrored by Gpu/Probe/ProbeParams.cs.
#ifndef NA_PROBE_PARAMS_H
#define NA_PROBE_PARAMS_H

typedef struct
{
    na_i64 elements;     // read probe: float4 elements in the source buffer
    int iterations;      // arithmetic probes: loop trips per thread (each trip is NA_PROBE_CHAINS operations)
    float sentinel;      // a value the results never equal (the store that keeps the work alive never happens)
} na_probe_params;

#endif
