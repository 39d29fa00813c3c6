// Layout probe of na_probe_params (probe/probe_params.h): its size, then every field's offset in declaration order
// (common/layout_probe.h), checked against the C# mirror by the layout tests.
#include "common/layout_probe.h"
#include "probe/probe_params.h"

NA_KERNEL void na_probe_params_layout(NA_GLOBAL int* out)
{
    NA_PROBE_BEGIN(na_probe_params);
#define NA_P(f) NA_PROBE(na_probe_params, f)
    NA_P(elements); NA_P(iterations); NA_P(sentinel);
#undef NA_P
}
