//! Linear forward + backward at the GEMM sizes of BENCH.md, in f32 on one thread.
//!
//! Run: `cargo bench --bench linear`. Throughput is reported in "elements/s" where one
//! element is one floating-point operation, so Gelem/s reads as GFLOP/s. Compare with the
//! machine's table in ../shared/BENCH.md (matrixmultiply 1 thread: ~86–101 GFLOP/s).
//! Shapes are M×K×N: x [M, K] · W [K, N]. Forward is 2·M·K·N flops; backward (dx and dW)
//! twice that.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use std::hint::black_box;
use tinymoe::engine::init;
use tinymoe::engine::layers::linear;

const SHAPES: &[(usize, usize, usize)] = &[(512, 512, 512), (2048, 256, 256), (2048, 768, 3072), (2048, 3072, 768)];

fn bench_linear(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a 1-thread pool");
    let mut group = c.benchmark_group("linear");
    group.sample_size(10);
    for &(m, k, n) in SHAPES {
        let mut rng = init::rng(0);
        let p: linear::Params<f32> = linear::init_he(k, n, &mut rng);
        let x: Array2<f32> = init::normal((m, k), 1.0, &mut rng);
        let dy: Array2<f32> = init::normal((m, n), 1.0, &mut rng);
        let name = format!("{m}x{k}x{n}");
        let flops = 2 * m * k * n;
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_with_input(BenchmarkId::new("forward", &name), &(), |b, _| {
            b.iter(|| pool.install(|| black_box(linear::forward(&p, x.view()))))
        });
        let (_, cache) = linear::forward(&p, x.view());
        group.throughput(Throughput::Elements(2 * flops as u64));
        group.bench_with_input(BenchmarkId::new("backward", &name), &(), |b, _| {
            b.iter(|| pool.install(|| black_box(linear::backward(&p, &cache, dy.view()))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_linear);
criterion_main!(benches);
