// The params mirrors need no padding: every field starts where the previous one ends and the size is a multiple of 8,
// so the C structs' layout cannot depend on a compiler's padding rules. (The layout probes, run in
// OpenClInteropTests and CudaInteropTests, compare each field with the C side.)
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NativeAttention.Gpu;
using Xunit;

namespace NativeAttention.Tests.Gpu;

public sealed class ParamsLayoutTests
{
    public static TheoryData<string> Mirrors() => [.. LayoutProbe.All.Select(p => p.Mirror.Name)];

    [Theory]
    [MemberData(nameof(Mirrors))]
    public void Mirror_HasNoImplicitPadding(string name)
    {
        var type = LayoutProbe.All.Single(p => p.Mirror.Name == name).Mirror;
        Assert.Equal(0, Marshal.SizeOf(type) % 8);
        AssertPacked(type);
    }

    [Fact]
    public void QkvoParams_Is224Bytes_AndComesFirst()
    {
        // 24 64-bit offsets and strides, 8 ints (kernels/common/qkvo_params.h).
        Assert.Equal(24 * 8 + 8 * 4, Marshal.SizeOf<QkvoParams>());
        Assert.Equal(0, (int)Marshal.OffsetOf<FlashParams>(nameof(FlashParams.Qkvo)));
        Assert.Equal(0, (int)Marshal.OffsetOf<DecodeParams>(nameof(DecodeParams.Qkvo)));
    }

    private static void AssertPacked(Type type)
    {
        int end = 0;
        foreach (var field in type.GetFields(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public))
        {
            int offset = (int)Marshal.OffsetOf(type, field.Name);
            Assert.True(offset == end, $"{type.Name}.{field.Name} starts at {offset}, but the previous field ends at {end}: padding.");
            var fixedBuffer = (FixedBufferAttribute?)Attribute.GetCustomAttribute(field, typeof(FixedBufferAttribute));
            end = offset + (fixedBuffer is { } f ? f.Length * Marshal.SizeOf(f.ElementType) : Marshal.SizeOf(field.FieldType));
            if (field.FieldType is { IsValueType: true, IsPrimitive: false, IsEnum: false } && fixedBuffer is null) AssertPacked(field.FieldType);
        }
        Assert.True(end == Marshal.SizeOf(type), $"{type.Name} ends its fields at {end} but is {Marshal.SizeOf(type)} bytes: tail padding.");
    }
}
