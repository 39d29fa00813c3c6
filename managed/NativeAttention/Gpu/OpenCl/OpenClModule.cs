// A built OpenCL program and its kernel, from source or from the on-disk binary cache.
using System.Text;
using NativeAttention.Interop.OpenCl;
using static NativeAttention.Interop.OpenCl.OpenClNative;

namespace NativeAttention.Gpu.OpenCl;

internal sealed unsafe class OpenClModule : IDisposable
{
    private readonly OpenClProgramHandle _program;
    private readonly OpenClKernelHandle _kernel;
    private readonly Lock _launch = new();

    private OpenClModule(OpenClProgramHandle program, OpenClKernelHandle kernel)
    {
        _program = program;
        _kernel = kernel;
    }

    /// <summary>CL_KERNEL_LOCAL_MEM_SIZE on <paramref name="device"/>: the local memory a work-group of the kernel uses.</summary>
    public long LocalMemoryBytes(OpenClDevice device)
    {
        ulong bytes;
        OpenClException.Check(clGetKernelWorkGroupInfo(_kernel, device.Id, 0x11B2, sizeof(ulong), &bytes, null), "clGetKernelWorkGroupInfo(LOCAL_MEM_SIZE)");
        return (long)bytes;
    }

    /// <summary>Builds <paramref name="source"/> for the context's device, reusing a cached binary when one exists.</summary>
    /// <exception cref="OpenClException">The build failed; <see cref="NativeCallException.BuildLog"/> holds the compiler output.</exception>
    public static OpenClModule Build(OpenClContextHandle context, OpenClDevice device, string source, string entryPoint, string options = "")
    {
        string key = KernelDiskCache.Key(".clbin", source, options, device.PlatformName, device.Name, device.DriverVersion);
        OpenClProgramHandle? program = null;
        if (KernelDiskCache.TryRead(key) is { } binary)
            program = TryFromBinary(context, device, binary, options);
        if (program is null)
        {
            program = FromSource(context, device, source, options);
            if (ProgramBinary(program) is { } built) KernelDiskCache.TryWrite(key, built);
        }
        int status;
        var name = Encoding.ASCII.GetBytes(entryPoint + "\0");
        OpenClKernelHandle kernel;
        fixed (byte* n = name) kernel = clCreateKernel(program, n, &status);
        if (status != Success)
        {
            program.Dispose();
            throw new OpenClException(status, $"clCreateKernel({entryPoint})");
        }
        return new OpenClModule(program, kernel);
    }

    /// <summary>Sets the arguments and enqueues a 2-D NDRange; serialised because kernel arguments are shared state.</summary>
    public void Launch(OpenClQueueHandle queue, ReadOnlySpan<IntPtr> memoryArguments, ReadOnlySpan<byte> parameters, long globalX, long globalY, int localX)
    {
        lock (_launch)
        {
            for (int i = 0; i < memoryArguments.Length; i++)
            {
                IntPtr value = memoryArguments[i];
                int status = clSetKernelArg(_kernel, (uint)i, (nuint)sizeof(IntPtr), &value);
                if (status != 0) OpenClException.Check(status, $"clSetKernelArg({i})");   // formatted on failure only
            }
            if (!parameters.IsEmpty)
                fixed (byte* p = parameters)
                    OpenClException.Check(clSetKernelArg(_kernel, (uint)memoryArguments.Length, (nuint)parameters.Length, p), "clSetKernelArg(params)");
            nuint* global = stackalloc nuint[2] { (nuint)globalX, (nuint)globalY };
            nuint* local = stackalloc nuint[2] { (nuint)localX, 1 };
            OpenClException.Check(clEnqueueNDRangeKernel(queue, _kernel, 2, null, global, local, 0, null, null), "clEnqueueNDRangeKernel");
        }
    }

    public void Dispose()
    {
        _kernel.Dispose();
        _program.Dispose();
    }

    private static OpenClProgramHandle FromSource(OpenClContextHandle context, OpenClDevice device, string source, string options)
    {
        var text = Encoding.UTF8.GetBytes(source);
        int status;
        OpenClProgramHandle program;
        fixed (byte* s = text)
        {
            byte* strings = s;
            nuint length = (nuint)text.Length;
            program = clCreateProgramWithSource(context, 1, &strings, &length, &status);
        }
        if (status != Success) throw new OpenClException(status, "clCreateProgramWithSource");
        int build = BuildProgram(program, device, options);
        if (build != Success)
        {
            string log = BuildLog(program, device);
            program.Dispose();
            throw new OpenClException(build, "clBuildProgram", log);
        }
        return program;
    }

    private static OpenClProgramHandle? TryFromBinary(OpenClContextHandle context, OpenClDevice device, byte[] binary, string options)
    {
        int status, binaryStatus;
        IntPtr id = device.Id;
        OpenClProgramHandle program;
        fixed (byte* b = binary)
        {
            byte* binaries = b;
            nuint length = (nuint)binary.Length;
            program = clCreateProgramWithBinary(context, 1, &id, &length, &binaries, &binaryStatus, &status);
        }
        if (status != Success || binaryStatus != Success || BuildProgram(program, device, options) != Success)
        {
            program.Dispose();
            return null;
        }
        return program;
    }

    private static int BuildProgram(OpenClProgramHandle program, OpenClDevice device, string options)
    {
        var optionBytes = Encoding.ASCII.GetBytes(options + "\0");
        IntPtr id = device.Id;
        fixed (byte* o = optionBytes) return clBuildProgram(program, 1, &id, o, IntPtr.Zero, IntPtr.Zero);
    }

    private static string BuildLog(OpenClProgramHandle program, OpenClDevice device)
    {
        nuint size;
        if (clGetProgramBuildInfo(program, device.Id, ProgramBuildLog, 0, null, &size) != Success) return "(no build log)";
        var bytes = new byte[size];
        fixed (byte* p = bytes) clGetProgramBuildInfo(program, device.Id, ProgramBuildLog, size, p, null);
        return Encoding.UTF8.GetString(bytes).TrimEnd('\0');
    }

    private static byte[]? ProgramBinary(OpenClProgramHandle program)
    {
        nuint size;
        if (clGetProgramInfo(program, ProgramBinarySizes, (nuint)sizeof(nuint), &size, null) != Success || size == 0) return null;
        var binary = new byte[size];
        fixed (byte* b = binary)
        {
            byte* pointer = b;
            if (clGetProgramInfo(program, ProgramBinaries, (nuint)sizeof(byte*), &pointer, null) != Success) return null;
        }
        return binary;
    }
}
