// The layout-probe pattern, family-neutral: each family's <family>_layout_probe.h defines a one-work-item kernel that
// writes sizeof its params struct, then the offset of every field in declaration order (a nested struct: the member,
// then each of its fields), so the host can check its C# mirror field by field.
//
//   NA_KERNEL void na_x_params_layout(NA_GLOBAL int* out)
//   {
//       NA_PROBE_BEGIN(na_x_params);
//       NA_PROBE(na_x_params, first_field); ...
//   }

#define NA_PROBE_BEGIN(type)                                      \
    if (NA_LOCAL_ID(0) != 0 || NA_GROUP_ID(0) != 0) return;       \
    int na_probe_n = 0;                                           \
    out[na_probe_n++] = (int)sizeof(type)

#define NA_PROBE(type, field) out[na_probe_n++] = NA_OFFSETOF(type, field)
