// gpu_bw: the GPU's memory read bandwidth, for the decode roofline of a CUDA run
// (bench/cuda_bench.sh refine passes it to refine_bench.sh --bandwidth). Reads a
// buffer of MIB MiB (default 2048) with 16-byte loads, best of 10 passes; prints
// "read_gpu GB/s".
//
//   nvcc -O2 -o gpu_bw bench/gpu_bw.cu && ./gpu_bw [MIB]
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

__global__ void read_all(const float4 *p, size_t n, float *out)
{
    float acc = 0.0f;

    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float4 v = p[i];

        acc += v.x + v.y + v.z + v.w;
    }
    if (acc == 12345.0f) // never, but the loads cannot be dropped
        out[0] = acc;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], nullptr, 10) : 2048, bytes = mib << 20;
    float4 *buf;
    float *out, best = 1e30f;
    cudaEvent_t a, b;
    int sms;

    if (cudaMalloc(&buf, bytes) != cudaSuccess || cudaMalloc(&out, sizeof(float)) != cudaSuccess) {
        fprintf(stderr, "gpu_bw: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    cudaMemset(buf, 0, bytes);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    for (int r = 0; r < 11; r++) {
        float ms;

        cudaEventRecord(a);
        read_all<<<sms * 8, 512>>>(buf, bytes / sizeof(float4), out);
        cudaEventRecord(b);
        cudaEventSynchronize(b);
        cudaEventElapsedTime(&ms, a, b);
        if (r > 0 && ms < best) // pass 0: warm-up
            best = ms;
    }
    if (cudaGetLastError() != cudaSuccess) {
        fprintf(stderr, "gpu_bw: the kernel failed\n");
        return 1;
    }
    printf("read_gpu %.1f\n", (double)bytes / (best / 1e3) / 1e9);
    return 0;
}
