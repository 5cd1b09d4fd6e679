//! Guards the hot kernels as the runtime runs them (one-node graphs through a `Session`, so the op's own
//! shape checks and value plumbing are counted): MatMul at the fixtures' and issue's sizes (1x784x512 is
//! the shape where burn-ndarray was 10x slower than ORT), Gemm with a bias, 3x3 / 7x7-stride-2 Conv,
//! and the small batched Convs of digits_cnn, and digits_cnn's MaxPool and global ReduceMean next to a Relu of the
//! same size (the per-step floor). On flex these run whittle's own f32 kernels (weights packed at plan time), so a
//! slower kernel or a lost fast path shows here.

use criterion::{BenchmarkId, Criterion, Throughput};
use whittle_ir::{AttrValue, Attribute, DataType, Graph, Model, Node, Shape, Tensor, Type, ValueInfo};
use whittle_runtime::{RuntimeOptions, Session};

fn info(name: &str, dims: &[i64]) -> ValueInfo {
    ValueInfo::new(name, Some(Type::tensor(DataType::F32, Some(Shape::known(dims)))))
}

fn values(count: usize) -> Vec<f32> {
    // Deterministic and varied; values do not change a dense kernel's speed.
    (0..count).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect()
}

/// A graph computing `node` from the input `x` of `x_dims` and initializer weights.
fn single_node(node: Node, x_dims: &[i64], weights: Vec<Tensor>, y_dims: &[i64]) -> (Session, Vec<(String, Tensor)>) {
    let graph = Graph {
        name: "kernel".into(),
        nodes: vec![node],
        inputs: vec![info("x", x_dims)],
        outputs: vec![info("y", y_dims)],
        initializers: weights,
        ..Graph::default()
    };
    let session = Session::new(&Model::new(graph, 10, 18), &RuntimeOptions::default()).expect("kernel graph plans");
    let count = x_dims.iter().product::<i64>() as usize;
    let x = Tensor::from_f32("x", x_dims.to_vec(), &values(count)).expect("input");
    (session, vec![("x".into(), x)])
}

fn weight(name: &str, dims: &[i64]) -> Tensor {
    Tensor::from_f32(name, dims.to_vec(), &values(dims.iter().product::<i64>() as usize)).expect("weight")
}

pub fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernel/matmul");
    for (m, k, n) in [(1, 784, 512), (8, 64, 128), (64, 256, 256), (256, 256, 256)] {
        let node = Node::new("mm", "MatMul", &["x", "w"], &["y"]);
        let (session, feed) = single_node(node, &[m, k], vec![weight("w", &[k, n])], &[m, n]);
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("{m}x{k}x{n}")), |b| {
            b.iter(|| session.run(feed.clone()).expect("run"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("kernel/gemm_bias");
    let (m, k, n) = (8, 64, 128);
    let node = Node::new("gemm", "Gemm", &["x", "w", "b"], &["y"]);
    let (session, feed) = single_node(node, &[m, k], vec![weight("w", &[k, n]), weight("b", &[n])], &[m, n]);
    group.throughput(Throughput::Elements((2 * m * k * n) as u64));
    group.bench_function(BenchmarkId::from_parameter(format!("{m}x{k}x{n}")), |b| {
        b.iter(|| session.run(feed.clone()).expect("run"))
    });
    group.finish();
}

pub fn conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernel/conv");
    // (name, batch, channels in, size, filters, kernel, stride, pad): the two shapes, and the
    // second convolution of digits_cnn at batch 8, where per-call cost outweighs the arithmetic.
    for (label, batch, cin, size, cout, kernel, stride, pad) in [
        ("3x3_64ch_56px", 1, 64, 56, 64, 3, 1, 1),
        ("7x7s2_stem_224px", 1, 3, 224, 64, 7, 2, 3),
        ("3x3_1ch_8px_batch8", 8, 1, 8, 16, 3, 1, 1),
        ("3x3_16ch_4px_batch8", 8, 16, 4, 32, 3, 1, 1),
    ] {
        let mut node = Node::new("conv", "Conv", &["x", "w"], &["y"]);
        node.attributes = vec![
            Attribute::new("kernel_shape", AttrValue::Ints(vec![kernel, kernel])),
            Attribute::new("strides", AttrValue::Ints(vec![stride, stride])),
            Attribute::new("pads", AttrValue::Ints(vec![pad, pad, pad, pad])),
        ];
        let out = (size + 2 * pad - kernel) / stride + 1;
        let (session, feed) = single_node(
            node,
            &[batch, cin, size, size],
            vec![weight("w", &[cout, cin, kernel, kernel])],
            &[batch, cout, out, out],
        );
        group.throughput(Throughput::Elements((2 * batch * cout * out * out * cin * kernel * kernel) as u64));
        group.sample_size(20);
        group.bench_function(BenchmarkId::from_parameter(label), |b| b.iter(|| session.run(feed.clone()).expect("run")));
    }
    group.finish();
}

/// digits_cnn's other steps at batch 8: MaxPool 2x2 stride 2 over 16 channels of 8x8, ReduceMean over
/// H and W of 32 channels of 4x4, and a Relu over the MaxPool's input, whose time is mostly the per-step cost.
pub fn cnn_ops(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernel/cnn");
    let mut pool = Node::new("pool", "MaxPool", &["x"], &["y"]);
    pool.attributes =
        vec![Attribute::new("kernel_shape", AttrValue::Ints(vec![2, 2])), Attribute::new("strides", AttrValue::Ints(vec![2, 2]))];
    let mut mean = Node::new("mean", "ReduceMean", &["x", "axes"], &["y"]);
    mean.attributes = vec![Attribute::new("keepdims", AttrValue::Int(0))];
    let axes = Tensor::from_i64("axes", vec![2], &[2, 3]).expect("axes");
    for (label, node, x_dims, weights, y_dims) in [
        ("max_pool_2x2_16ch_8px_batch8", pool, vec![8, 16, 8, 8], vec![], vec![8, 16, 4, 4]),
        ("reduce_mean_hw_32ch_4px_batch8", mean, vec![8, 32, 4, 4], vec![axes], vec![8, 32]),
        ("relu_16ch_8px_batch8", Node::new("relu", "Relu", &["x"], &["y"]), vec![8, 16, 8, 8], vec![], vec![8, 16, 8, 8]),
    ] {
        let (session, feed) = single_node(node, &x_dims, weights, &y_dims);
        group.bench_function(BenchmarkId::from_parameter(label), |b| b.iter(|| session.run(feed.clone()).expect("run")));
    }
    group.finish();
}

/// A u8 or i8 tensor of `dims` with deterministic bytes spread over the type's range.
fn int8_tensor(name: &str, dtype: DataType, dims: &[i64]) -> Tensor {
    let count = dims.iter().product::<i64>() as usize;
    let bytes = (0..count).map(|i| ((i * 7919) % 251) as u8).collect();
    Tensor::from_bytes(name, dtype, dims.to_vec(), bytes).expect("int8 tensor")
}

/// MatMulInteger (u8 activations x constant i8 weights, both zero points given, as whittle's int8-dynamic
/// models write it) at MatMul's sizes, so `kernel/matmul_integer/S` reads against `kernel/matmul/S`: the
/// int8 kernel (rten-gemm's VNNI GEMM, weights packed at plan time) should beat the f32 one.
pub fn matmul_integer(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernel/matmul_integer");
    for (m, k, n) in [(1, 784, 512), (8, 64, 128), (64, 256, 256), (256, 256, 256)] {
        let graph = Graph {
            name: "kernel".into(),
            nodes: vec![Node::new("mm", "MatMulInteger", &["x", "w", "x_zero", "w_zero"], &["y"])],
            inputs: vec![ValueInfo::new("x", Some(Type::tensor(DataType::U8, Some(Shape::known(&[m, k])))))],
            outputs: vec![ValueInfo::new("y", Some(Type::tensor(DataType::I32, Some(Shape::known(&[m, n])))))],
            initializers: vec![
                int8_tensor("w", DataType::I8, &[k, n]),
                Tensor::from_bytes("x_zero", DataType::U8, vec![], vec![128]).expect("zero point"),
                Tensor::from_bytes("w_zero", DataType::I8, vec![], vec![0]).expect("zero point"),
            ],
            ..Graph::default()
        };
        let session = Session::new(&Model::new(graph, 10, 18), &RuntimeOptions::default()).expect("kernel graph plans");
        let feed = vec![("x".to_string(), int8_tensor("x", DataType::U8, &[m, k]))];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("{m}x{k}x{n}")), |b| {
            b.iter(|| session.run(feed.clone()).expect("run"))
        });
    }
    group.finish();
}
