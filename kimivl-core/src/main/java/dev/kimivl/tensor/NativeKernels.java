package dev.kimivl.tensor;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The native AVX2 kernels (kimivl-core/src/main/c/kimivl_kernels.c, built by gcc during the Maven build into the
 * jar) for the integer Q4_0 / Q8_0 matvec of token decode, called through FFM.
 *
 * <p>Why: the Java Vector API has no byte multiply-add on AVX2, and the Java integer kernels spend ~35 instructions
 * per 32-weight block where one core has time for ~10 at memory speed (kimivl-bench/README.md). The Java kernels
 * stay as the fallback (other CPUs, builds without gcc, {@code -Dkimivl.native=false}) and as the reference that
 * NativeKernelsTest compares these against.
 *
 * <p>Calls are "critical" downcalls: no thread-state transition, and heap arrays (the quantized activation, the
 * output) are passed in place, without copies. Each call covers a range of rows, a few microseconds or more of work.
 */
public final class NativeKernels {
    private static final int ABI_VERSION = 1;
    private static final String RESOURCE = "/dev/kimivl/native/linux-x86_64/libkimivl.so";

    /** True when the native kernels are loaded and this CPU runs them. */
    public static final boolean AVAILABLE;
    /** One line for reports: which kernels run decode, and why not the native ones. */
    public static final String STATUS;

    private static final MethodHandle Q4_0, Q8_0;

    static {
        MethodHandle q4 = null, q8 = null;
        String status;
        boolean ok = false;
        if (!Boolean.parseBoolean(System.getProperty("kimivl.native", "true"))) {
            status = "Java Vector API kernels (native kernels turned off by -Dkimivl.native=false)";
        } else {
            try {
                SymbolLookup lib = load();
                Linker linker = Linker.nativeLinker();
                Linker.Option critical = Linker.Option.critical(true);
                int version = (int) linker.downcallHandle(lib.findOrThrow("kv_version"), FunctionDescriptor.of(JAVA_INT)).invokeExact();
                int cpuOk = (int) linker.downcallHandle(lib.findOrThrow("kv_cpu_ok"), FunctionDescriptor.of(JAVA_INT)).invokeExact();
                if (version != ABI_VERSION) {
                    status = "Java Vector API kernels (native library has ABI version " + version + ", expected " + ABI_VERSION + ")";
                } else if (cpuOk == 0) {
                    status = "Java Vector API kernels (this CPU lacks AVX2/FMA/F16C for the native kernels)";
                } else {
                    q4 = linker.downcallHandle(lib.findOrThrow("kv_matvec_q4_0"), FunctionDescriptor.ofVoid(
                            ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), critical);
                    q8 = linker.downcallHandle(lib.findOrThrow("kv_matvec_q8_0"), FunctionDescriptor.ofVoid(
                            ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), critical);
                    ok = true;
                    status = "native AVX2 kernels (libkimivl.so) for Q4_0/Q8_0 decode";
                }
            } catch (Throwable t) {
                status = "Java Vector API kernels (native kernels unavailable: " + t.getMessage() + ")";
            }
        }
        Q4_0 = q4;
        Q8_0 = q8;
        AVAILABLE = ok;
        STATUS = status;
    }

    private NativeKernels() {}

    /** Copies the library out of the jar (dlopen needs a file) and opens it; the file is deleted once opened. */
    private static SymbolLookup load() throws IOException {
        String os = System.getProperty("os.name", "").toLowerCase(), arch = System.getProperty("os.arch", "");
        if (!os.contains("linux") || !(arch.equals("amd64") || arch.equals("x86_64"))) {
            throw new IOException("built for linux x86-64 only, this is " + os + " " + arch);
        }
        try (InputStream in = NativeKernels.class.getResourceAsStream(RESOURCE)) {
            if (in == null) throw new IOException("no " + RESOURCE + " in the build (gcc was not found when it was built)");
            Path tmp = Files.createTempFile("libkimivl", ".so");
            try {
                Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
                return SymbolLookup.libraryLookup(tmp, Arena.global());
            } finally {
                Files.deleteIfExists(tmp);
            }
        }
    }

    /**
     * y[yo + r] = Σ_c W[r, c]·x'[c] for r in [r0, r1), W a Q4_0 or Q8_0 matrix of {@code cols} columns whose rows
     * start at byte 0 of w, x' the quantized activation. Only when {@link #AVAILABLE}.
     */
    static void matvec(DType type, MemorySegment w, int r0, int r1, int cols, MemorySegment xq, MemorySegment xd,
                       MemorySegment xs8, float[] y, int yo) {
        try {
            if (type == DType.Q4_0) {
                Q4_0.invokeExact(w, 0L, r0, r1, cols, xq, xd, xs8, MemorySegment.ofArray(y), yo);
            } else if (type == DType.Q8_0) {
                Q8_0.invokeExact(w, 0L, r0, r1, cols, xq, xd, MemorySegment.ofArray(y), yo);
            } else {
                throw new IllegalArgumentException("native matvec needs Q4_0 or Q8_0, not " + type);
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
