// Arguments of the MergeStates kernel (merge/merge_states.h), passed by value. Mirrored by
// managed/NativeAttention/Gpu/Merge/MergeParams.cs; a test runs merge/merge_layout_probe.h and checks that both sides
// agree on size and offsets. 64-bit fields first, so no padding depends on the compiler. The row index space (the
// dimensions between S and Dv) is padded at the front to 4 axes of size 1 and stride 0.
typedef struct na_merge_params
{
    na_i64 po_offset;        // element offset of partial output [0, row 0, 0] from its buffer's base
    na_i64 po_stride_s;      // partial outputs: stride between splits
    na_i64 po_stride_d;      // partial outputs: stride along Dv
    na_i64 pl_offset;        // element offset of partial LSE [0, row 0]
    na_i64 pl_stride_s;      // partial LSEs: stride between splits
    na_i64 o_offset;         // element offset of output [row 0, 0]
    na_i64 o_stride_d;       // output: stride along Dv
    na_i64 lse_offset;       // element offset of the merged LSE [row 0]; unused when has_lse == 0
    na_i64 po_stride_r[4];   // row-axis strides of the partial outputs, outermost first
    na_i64 pl_stride_r[4];   // row-axis strides of the partial LSEs
    na_i64 o_stride_r[4];    // row-axis strides of the output
    na_i64 lse_stride_r[4];  // row-axis strides of the merged LSE
    int row_shape[4];        // sizes of the row axes, outermost first
    int splits;              // S
    int dv;                  // value dimension
    int rows;                // product of row_shape
    int has_lse;             // 1 when the merged LSE is written
} na_merge_params;
