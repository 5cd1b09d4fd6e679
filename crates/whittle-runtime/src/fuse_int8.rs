//! Planner step: runs each quantized layer as one integer kernel ([`Int8Product`]) instead of the
//! chain of f32 ops its ONNX form spells out.
//!
//! Two forms are recognised, the ones `whittle quantize` writes (and ONNX Runtime's quantizer):
//! - static QDQ: `DQ(Q(x))` and `DQ(constant W)` [and `DQ(constant int32 bias)` or a float bias]
//!   into MatMul, Gemm or Conv [with a Relu that `crate::fuse` already put in its kernel]. The fused
//!   step quantizes x with the Q's scale and zero point, multiplies in u8 x i8 -> i32 with W packed
//!   once here, and applies `accumulator * (x_scale * w_scale[column]) + bias`, then the Relu.
//! - dynamic: `DynamicQuantizeLinear(x)` into MatMulInteger or ConvInteger with a constant W, then
//!   `Cast(to f32)`, `Mul` by `Mul(x_scale, constant w_scale)` [, `Add` of a constant bias]
//!   [, `Relu`]. The fused step computes x's range and quantization itself, then the same product
//!   and epilogue, with the multiplier `x_scale * w_scale[column]` made per call.
//!
//! A fused convolution then takes the MaxPool, spatial ReduceMean or GlobalAveragePool that alone
//! reads its output into its step ([`pool_int8`]).
//!
//! A pattern is fused only when its intermediates have no other reader and are not graph outputs
//! (a Q output read by anything but its DQ, a product or Cast read twice, a graph output in the
//! middle: left as it is), on burn-flex with an exact int8 kernel for the CPU: whittle's own
//! AVX512-VNNI loops (`kernels::vnni`, weights whose zero points are 0), rten-gemm's exact GEMM
//! (`kernels::int8`, other zero points on the same CPUs, ARM), or whittle's AVX2 `vpmaddwd` loops
//! (`kernels::madd`, x86 without VNNI, where rten's kernel may saturate; any zero points, and
//! `Int8Kernels::Avx2` picks them anywhere to measure them). Elsewhere, and for convolutions past
//! the direct loops' limits on AVX2, the plan keeps the ONNX ops, which run everywhere. The Q, DQ, DynamicQuantizeLinear
//! and scale `Mul` steps the fused steps made unread are dropped; ones that something else still
//! reads stay (a DQ(x) shared by a fused and an unfused layer, for instance).
//!
//! Semantics: the integer sum is exact in both forms, so the fused result equals the unfused graph
//! up to f32 rounding in the static form (the unfused graph multiplies dequantized f32 values and
//! sums them in f32) and bit for bit in the dynamic one (the same f32 operations in the same order:
//! `f32(accumulator) * (x_scale * w_scale)`, then `+ bias`).
//!
//! Why: before this step every Q, DQ (of the weights too, on every run), Cast and Mul was its own
//! step over f32 buffers. Measured with `whittle bench --threads 1` (p50, int8 / fp32 of the same
//! run, before -> after; `cargo xtask int8-vs-fp32` writes the full table to
//! `benches/results/int8-vs-fp32.md`): digits_mlp static 8.3x -> 1.22x at batch 1 and 7.3x -> 1.13x
//! at batch 8, dynamic 6.0x -> 1.18x and 4.8x -> 1.22x; digits_cnn static 1.76x -> 0.81x and
//! 1.69x -> 0.81x, dynamic 1.88x -> 0.80x and 2.02x -> 0.82x; transformer_tiny static 2.26x ->
//! 1.11x and 1.78x -> 1.04x, dynamic 1.81x -> 0.76x and 2.04x -> 1.28x (the transformer's cells vary
//! by 0.2 between runs on this shared 2-vCPU machine at load 5-8). Since then the layers that feed
//! only each other run as one chain ([`chain_int8`]), a MatMul takes the bias Add after it, and on
//! AVX512-VNNI the products and convolutions with symmetric weights run whittle's own loops with
//! the epilogue in registers (`kernels::vnni`): int8-static is 0.49-0.90x fp32 in the table at
//! batch 1, 8 and 64 (nearest 1.0: digits_cnn at batch 1, its steps' fixed costs). On AVX2
//! without VNNI the same layers run `kernels::madd` (the table's AVX2 column: 0.54-1.71x fp32 on
//! AVX-512). On the Sapphire Rapids of sessions 12-15 (one thread, int8-static / fp32 p50 at batch
//! 1, 8, 64): digits_mlp 0.46, 0.54, 0.59 before `vnni::quantize` (quantizing each layer's input,
//! a fifth of the MLP's int8 run at batch 64, is now by the reciprocal of the scale with a tie
//! check, 1.9x faster: b64 12.33 -> 10.84 us), digits_cnn 0.80, 0.75, 0.70 before the convolutions'
//! uninitialised outputs and vectorized `interleave` (b64 0.60 after), transformer_tiny 0.86,
//! 0.76, 0.78. What is left: in the transformer the fused layers are about a third of a run, the rest
//! (Erf, Softmax, LayerNormalization, attention products, reshapes) is f32 either way. Chained
//! layers handing each other quantized bytes from the kernels' epilogues (with digits_cnn's
//! MaxPool pooling the bytes) measured no faster at batch 64 and were not kept: see
//! ARCHITECTURE.md.

use std::borrow::Cow;

use burn_tensor::Device;
use whittle_ir::{DataType, Tensor};

use rten_gemm::GemmExecutor;

use crate::device::Int8Kernels;
use crate::int_input::IntsInput;
use crate::kernels::int8::{self, ActivationQuant, ConstantIntRhs};
use crate::kernels::madd::{self, MaddMatrix, MaddWeights};
use crate::kernels::vnni::{self, VnniMatrix, VnniWeights};
use crate::kernels::{self, elementwise, Activation};
use crate::ops::conv::{resolve_conv, Conv};
use crate::ops::max_pool::MaxPool;
use crate::ops::reduce_mean::ReduceMean;
use crate::ops::{fail, normalize_axis, Inputs, Op, OpError};
use crate::plan::{Kernel, Read, Step};
use crate::quant::to_float;
use crate::spatial::Resolved;
use crate::value::Value;

/// The product a fused step computes.
#[derive(Debug, Clone, PartialEq)]
enum Product {
    /// `x [..., k] @ W [k, n]` (MatMul with a 2-D weight, MatMulInteger).
    MatMul,
    /// `x [m, k] @ W' [k, n]` (Gemm without transA, alpha 1 and beta 1).
    Gemm,
    /// A 2-D convolution with one group, weights `[filters, channels, kh, kw]`.
    Conv { conv: Box<Conv>, w_shape: Vec<usize> },
}

/// Where the activation's quantization parameters come from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum InputQuant {
    /// The Q's constants.
    Static(ActivationQuant),
    /// DynamicQuantizeLinear's rule over each call's x.
    Dynamic,
}

/// A quantized layer in one step: quantize x, integer product with the packed weights, f32
/// epilogue. Built only by [`fuse_int8`].
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Product {
    op_type: &'static str,
    product: Product,
    input: InputQuant,
    weights: Weights,
    /// One weight scale per output channel.
    weight_scales: Vec<f32>,
    /// `x_scale * w_scale[channel]` for the static form.
    multipliers: Vec<f32>,
    bias: Option<Vec<f32>>,
    activation: Option<Activation>,
    /// The pooling a convolution applies to its own output (see [`pool_int8`]).
    pool: Option<Pool>,
    /// Fused layers that run after this one in the same step, each on the previous one's f32
    /// output (see [`chain_int8`]).
    then: Vec<Int8Product>,
}

/// A pooling of a fused convolution's f32 output that the convolution step computes itself, image
/// by image, with the pooling op's own kernel ([`pool_int8`]).
#[derive(Debug, Clone, PartialEq)]
enum Pool {
    /// MaxPool without its Indices output.
    Max(Box<MaxPool>),
    /// The mean over both spatial axes: ReduceMean over them, or GlobalAveragePool (`keepdims`).
    Mean { keepdims: bool },
}

/// A [`Pool`] for one call's output planes `[filters, h, w]`.
enum PoolCall {
    Max { window: Resolved, output: [usize; 2] },
    Mean { keepdims: bool },
}

impl PoolCall {
    fn new(pool: &Pool, [h, w]: [usize; 2]) -> Result<PoolCall, OpError> {
        Ok(match pool {
            Pool::Max(max) => {
                let window = max.window.resolve(&[h, w], max.window.kernel.as_deref().unwrap_or_default())?;
                let output = match window.output_sizes(&[h, w], max.ceil_mode)[..] {
                    [oh, ow] => [oh, ow],
                    _ => fail!("the MaxPool window is not 2-D"),
                };
                PoolCall::Max { window, output }
            }
            Pool::Mean { keepdims } => PoolCall::Mean { keepdims: *keepdims },
        })
    }

    /// The pooled shape of images `n` with `filters` planes.
    fn shape(&self, n: usize, filters: usize) -> Vec<usize> {
        match self {
            PoolCall::Max { output: [oh, ow], .. } => vec![n, filters, *oh, *ow],
            PoolCall::Mean { keepdims: true } => vec![n, filters, 1, 1],
            PoolCall::Mean { keepdims: false } => vec![n, filters],
        }
    }

    /// The same pooling in the registers of `vnni`'s convolution, where it has it.
    fn in_registers(&self) -> Option<vnni::RegisterPool> {
        match self {
            PoolCall::Max { window, .. } => {
                let plain = window.kernel == [2, 2]
                    && window.strides == [2, 2]
                    && window.dilations == [1, 1]
                    && window.padding.iter().all(|&(begin, end)| begin + end == 0);
                plain.then_some(vnni::RegisterPool::Max2x2)
            }
            PoolCall::Mean { .. } => Some(vnni::RegisterPool::Mean),
        }
    }

    /// Pools one image's planes `[filters, h, w]` onto the end of `out`.
    fn apply(&self, planes: &[f32], [filters, h, w]: [usize; 3], out: &mut Vec<f32>) {
        match self {
            PoolCall::Max { window, output } => elementwise::max_pool_into(planes, [1, filters, h, w], window, *output, out),
            PoolCall::Mean { .. } => elementwise::mean_rows_into(planes, h * w, out),
        }
    }
}

/// The weights in the kernel's operand form.
#[derive(Debug, Clone, PartialEq)]
enum Weights {
    /// The right operand `[k, n]` of `x @ W`, packed once, with its zero points per column in the
    /// kernel's i8 (`None` when they are all 0 there).
    Columns { packed: ConstantIntRhs, zero: Option<Vec<i8>> },
    /// The left operand `[filters, depth]` of `W @ patches` in the kernel's u8, with one zero point
    /// per filter. A convolution multiplies this way round so that its patches are gathered by
    /// contiguous copies and its product is already NCHW: with the patches as the left operand
    /// (rows per output position) the gather and the transposing epilogue took 43% of the
    /// int8-static digits_cnn run at batch 8 (perf), more than the fp32 convolutions in total.
    ///
    /// The weights stay unpacked: packed once at plan time (`prepack_a`), rten no longer applies
    /// their zero points, and the column sums of the patches that this needs cost more than the
    /// packing saved (int8-static digits_cnn at batch 8, p50: 38.4 us against 32.5 us unpacked, in
    /// the same minute).
    Filters { bytes: Vec<u8>, zero: Vec<u8>, filters: usize, depth: usize },
    /// A convolution's filters for the direct AVX512-VNNI loop ([`vnni`]), where the CPU has
    /// it and the weights' zero points are 0: int8-static digits_cnn went from 10.0 to 6.1 us at
    /// batch 1 and from 35 to 22 us at batch 8 (p50, one thread; fp32 8.0 and 29 us).
    Direct(VnniWeights),
    /// The right operand `[k, n]` of `x @ W` for the AVX512-VNNI product ([`vnni::gemm`]), where
    /// the CPU has it and the weights' zero points are 0: int8-static digits_mlp went from 4.0 to
    /// 3.2 us at batch 8 and from 19.5 to 14.9 us at batch 64 (fp32 5.9 and 22 us), and with the
    /// weights in groups of up to 4 column blocks and 6x4 accumulators from 14.8 to 12.7 us at
    /// batch 64 (another machine, see `vnni::gemm`).
    Matrix(VnniMatrix),
    /// The right operand `[k, n]` of `x @ W` for the exact AVX2 product ([`madd::gemm`]), any
    /// zero points, where rten's kernel for the CPU may saturate (AVX2 without AVX512-VNNI) or
    /// [`Int8Kernels::Avx2`] asks for it.
    MaddMatrix(MaddMatrix),
    /// A convolution's filters for the exact AVX2 convolution ([`madd::run`]), likewise.
    MaddConv(MaddWeights),
}

impl Int8Product {
    /// The name the fused step goes by in profiles and errors (`Int8Gemm`, `Int8MatMul`, `Int8Conv`,
    /// with `Dynamic` for the dynamic form; `Int8Chain` for layers run back to back in one step).
    pub fn op_type(&self) -> &'static str {
        match (self.then.is_empty(), &self.pool) {
            (false, _) => "Int8Chain",
            (true, Some(Pool::Max(_))) => "Int8ConvMaxPool",
            (true, Some(Pool::Mean { .. })) => "Int8ConvMean",
            (true, None) => self.op_type,
        }
    }

    pub(crate) fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        // The Q divides in its scale's dtype, f32 here; an f16 x is widened exactly, as ONNX Runtime
        // does it.
        let x = to_float(x, DataType::F32)?;
        let Some(tensor) = kernels::flex_f32(&x) else { fail!("the fused int8 kernel runs on burn-flex values only") };
        // rten's executor, for the weights packed for it (`None` where its kernel may saturate).
        let executor = int8::executor();
        let values = kernels::contiguous(&tensor);
        let (mut out, mut shape) = self.layer(executor, &values, x.shape())?;
        for (position, layer) in self.then.iter().enumerate() {
            (out, shape) = layer.layer(executor, &out, &shape).map_err(|err| {
                OpError::new(format!("layer {} of the chain ({}): {}", position + 2, layer.op_type, err.reason))
            })?;
        }
        Ok(vec![kernels::output(out, &shape)?])
    }

    /// This layer alone on the f32 values `values` of shape `shape`: its output and output shape.
    fn layer(
        &self,
        executor: Option<&GemmExecutor<u8, i8, i32>>,
        values: &[f32],
        shape: &[usize],
    ) -> Result<(Vec<f32>, Vec<usize>), OpError> {
        let quant = match self.input {
            InputQuant::Static(quant) => quant,
            InputQuant::Dynamic => match ActivationQuant::dynamic_over(values) {
                Some(quant) => quant,
                None => fail!("x holds NaN, which has no range to quantize"),
            },
        };
        let bytes = quant.quantize(values);
        let multipliers = match self.input {
            InputQuant::Static(_) => Cow::Borrowed(&self.multipliers),
            InputQuant::Dynamic => Cow::Owned(self.weight_scales.iter().map(|&w| quant.scale * w).collect()),
        };
        let bias = self.bias.as_deref();
        // The epilogue the register kernels (`vnni`, `madd`) apply themselves.
        let epilogue = vnni::Epilogue { multipliers: &multipliers, bias, activation: self.activation };
        let zero = quant.kernel_zero();
        match (&self.product, &self.weights) {
            (Product::MatMul | Product::Gemm, Weights::Columns { packed, zero }) => {
                let Some(executor) = executor else { fail!("no exact int8 kernel for this CPU") };
                let (k, n) = (packed.k, packed.n);
                let out_shape = self.product_shape(shape, k, n)?;
                let rows = bytes.len() / k;
                let a_zero = vec![quant.kernel_zero(); rows];
                let mut accumulators = vec![0i32; rows * n];
                let rhs = int8::Rhs::Constant(packed);
                int8::gemm(executor, &mut accumulators, &bytes, Some(&a_zero), rhs, zero.as_deref(), [rows, k, n])?;
                let layout = int8::ProductLayout::Columns { n };
                Ok((int8::dequantize(&accumulators, layout, &multipliers, bias, self.activation), out_shape))
            }
            (Product::Conv { conv, w_shape }, Weights::Filters { bytes: weights, zero, filters, depth }) => {
                let Some(executor) = executor else { fail!("no exact int8 kernel for this CPU") };
                let geometry = conv_geometry(conv, w_shape, shape)?;
                let (window, plane) = (geometry.window, geometry.output);
                let patches = int8::im2col_columns(&bytes, geometry.x, window.kernel, &window, plane, quant.kernel_zero());
                let (images, positions) = (shape[0], plane[0] * plane[1]);
                let columns = images * positions;
                let patch_zero = vec![(quant.kernel_zero() ^ 0x80) as i8; columns];
                let mut accumulators = vec![0i32; filters * columns];
                let rhs = int8::Rhs::Matrix(&patches);
                int8::gemm(
                    executor,
                    &mut accumulators,
                    weights,
                    Some(zero),
                    rhs,
                    Some(&patch_zero),
                    [*filters, *depth, columns],
                )?;
                let out_shape = vec![images, *filters, plane[0], plane[1]];
                let layout = int8::ProductLayout::Filters { filters: *filters, images, positions };
                self.pooled(int8::dequantize(&accumulators, layout, &multipliers, bias, self.activation), out_shape)
            }
            (Product::MatMul | Product::Gemm, Weights::Matrix(matrix)) => {
                let (k, n) = (matrix.k(), matrix.n());
                self.in_registers(shape, k, n, &bytes, |x, m| vnni::gemm(x, zero, m, matrix, &epilogue))
            }
            (Product::MatMul | Product::Gemm, Weights::MaddMatrix(matrix)) => {
                let (k, n) = (matrix.k(), matrix.n());
                self.in_registers(shape, k, n, &bytes, |x, m| madd::gemm(x, zero, m, matrix, &epilogue))
            }
            (Product::Conv { conv, w_shape }, Weights::Direct(weights)) => {
                let geometry = conv_geometry(conv, w_shape, shape)?;
                let Some(pool) = &self.pool else {
                    let out = vnni::run(&bytes, zero, &geometry, weights, &epilogue);
                    return conv_output(out, shape, w_shape, weights.filters(), &geometry);
                };
                // Pooled image by image as the kernel writes them (`vnni::run_then`).
                let [oh, ow] = geometry.output;
                let call = PoolCall::new(pool, [oh, ow])?;
                let filters = weights.filters();
                let mut each = |planes: &[f32], out: &mut Vec<f32>| call.apply(planes, [filters, oh, ow], out);
                let pooling = vnni::Pooling { each: &mut each, in_registers: call.in_registers() };
                let Some(out) = vnni::run_then(&bytes, zero, &geometry, weights, &epilogue, Some(pooling)) else {
                    fail!("x {shape:?} does not fit the weights {w_shape:?}")
                };
                Ok((out, call.shape(shape[0], filters)))
            }
            (Product::Conv { conv, w_shape }, Weights::MaddConv(weights)) => {
                let geometry = conv_geometry(conv, w_shape, shape)?;
                let out = madd::run(&bytes, zero, &geometry, weights, &epilogue);
                let (out, out_shape) = conv_output(out, shape, w_shape, weights.filters(), &geometry)?;
                self.pooled(out, out_shape)
            }
            _ => fail!("the fused int8 op's weights do not fit its product"),
        }
    }
}

impl Int8Product {
    /// A convolution's whole output `out` of NCHW `shape` through the layer's pooling, if any.
    fn pooled(&self, out: Vec<f32>, shape: Vec<usize>) -> Result<(Vec<f32>, Vec<usize>), OpError> {
        let (Some(pool), &[n, filters, h, w]) = (&self.pool, &shape[..]) else { return Ok((out, shape)) };
        let call = PoolCall::new(pool, [h, w])?;
        let mut pooled = Vec::new();
        if h * w > 0 {
            out.chunks_exact(filters * h * w).for_each(|planes| call.apply(planes, [filters, h, w], &mut pooled));
        }
        Ok((pooled, call.shape(n, filters)))
    }

    /// A product on a register kernel (`run(x, rows)`, epilogue applied): its output and shape.
    fn in_registers(
        &self,
        shape: &[usize],
        k: usize,
        n: usize,
        bytes: &[u8],
        run: impl FnOnce(&[u8], usize) -> Option<Vec<f32>>,
    ) -> Result<(Vec<f32>, Vec<usize>), OpError> {
        let out_shape = self.product_shape(shape, k, n)?;
        let Some(out) = run(bytes, bytes.len() / k) else { fail!("x {shape:?} does not multiply the weights [{k}, {n}]") };
        Ok((out, out_shape))
    }

    /// The output shape of `x [..., k] @ W [k, n]` for an x of `shape`, checked against the product
    /// (a Gemm's x is 2-D).
    fn product_shape(&self, shape: &[usize], k: usize, n: usize) -> Result<Vec<usize>, OpError> {
        let fits = match self.product {
            Product::Gemm => shape.len() == 2,
            _ => !shape.is_empty(),
        };
        if !fits || shape[shape.len() - 1] != k {
            fail!("x {shape:?} does not multiply the weights [{k}, {n}]");
        }
        let mut out_shape = shape[..shape.len() - 1].to_vec();
        out_shape.push(n);
        Ok(out_shape)
    }
}

/// A register kernel's convolution output (`None` when x did not fit the weights) with its NCHW shape.
fn conv_output(
    out: Option<Vec<f32>>,
    shape: &[usize],
    w_shape: &[usize],
    filters: usize,
    geometry: &vnni::Geometry,
) -> Result<(Vec<f32>, Vec<usize>), OpError> {
    let Some(out) = out else { fail!("x {shape:?} does not fit the weights {w_shape:?}") };
    Ok((out, vec![shape[0], filters, geometry.output[0], geometry.output[1]]))
}

/// The 2-D window, image and output sizes of `conv` on an x of `shape`.
fn conv_geometry(conv: &Conv, w_shape: &[usize], shape: &[usize]) -> Result<vnni::Geometry, OpError> {
    let resolved = resolve_conv(&conv.window, 1, shape, w_shape, None)?;
    let outputs = resolved.output_sizes(&shape[2..], false);
    match (shape, w_shape) {
        (&[b, c, h, w], &[_, _, _, _]) if outputs.len() == 2 => {
            Ok(vnni::Geometry { x: [b, c, h, w], window: resolved.as_2d(), output: [outputs[0], outputs[1]] })
        }
        _ => fail!("x {shape:?} and W {w_shape:?} are not a 2-D convolution"),
    }
}

/// Fuses the quantized layers of `steps` (see the module doc); `graph_outputs` are the slots the
/// graph returns and `constant` the initializer behind a slot, if any. Returns how many steps were
/// removed.
pub(crate) fn fuse_int8<'a>(
    steps: &mut Vec<Step>,
    graph_outputs: &[usize],
    slot_count: usize,
    constant: &dyn Fn(usize) -> Option<&'a Tensor>,
    device: &Device,
    kernels: Int8Kernels,
) -> usize {
    // rten's exact kernel (on AVX512-VNNI, which whittle's own loops there then mostly replace) or
    // whittle's AVX2 loops; without either the ONNX ops run.
    let rten = kernels == Int8Kernels::Best && int8::executor().is_some();
    if *device != Device::flex() || !(rten || madd::available()) {
        return 0;
    }
    let graph = Dataflow::new(steps, graph_outputs, slot_count);
    let mut replaced = Vec::new();
    let mut consumed = vec![false; steps.len()];
    let mut candidates = Vec::new();
    for index in 0..steps.len() {
        let Kernel::Tensor(op) = &steps[index].kernel else { continue };
        let matcher = Matcher { steps, graph: &graph, constant, kernels };
        let fused = match op {
            Op::MatMul(_) | Op::Gemm(_) | Op::Conv(_) => matcher.static_form(index),
            Op::MatMulInteger(_) | Op::ConvInteger(_) => matcher.dynamic_form(index),
            _ => None,
        };
        let Some(fused) = fused else { continue };
        for &step in &fused.consumed {
            consumed[step] = true;
        }
        candidates.extend(fused.candidates);
        replaced.push((index, fused.op, fused.input, fused.outputs));
    }
    for (index, op, input, outputs) in replaced {
        let step = &mut steps[index];
        step.kernel = Kernel::Tensor(Op::Int8(Box::new(op)));
        step.inputs = vec![Some(Read::Clone(input))];
        step.outputs = outputs;
        step.required_results = 1;
    }
    // Steps whose every output is now unread go, repeatedly: a DQ(x) that only fused layers read
    // leaves its Q unread in turn.
    let mut removed = consumed;
    loop {
        let graph = Dataflow::new_without(steps, &removed, graph_outputs, slot_count);
        let dead: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&step| !removed[step] && steps[step].outputs.iter().flatten().all(|&slot| graph.unread(slot)))
            .collect();
        if dead.is_empty() {
            break;
        }
        for step in dead {
            removed[step] = true;
        }
    }
    crate::fuse::remove_steps(steps, &removed)
}

/// Moves a pooling that alone reads a fused convolution's output into the convolution's step:
/// MaxPool (without Indices), ReduceMean over the two spatial axes (constant axes) and
/// GlobalAveragePool, on the convolution's f32 output after its Relu. The convolution then pools
/// each image's planes as its kernel writes them ([`vnni::run_then`]), with MaxPool's and
/// ReduceMean's own kernels (`kernels::elementwise`), so the result is the unfused plan's bit for
/// bit (GlobalAveragePool's unfused mean is burn's, equal up to the order of the f32 sums).
/// Returns how many steps were removed.
///
/// Why: digits_cnn's int8 run at batch 64 spent a quarter of its time in its MaxPool and
/// ReduceMean steps, reading back the convolutions' full-size outputs (256 KiB and 128 KiB of f32)
/// from L2; pooled from a buffer of one image the full-size output is never stored.
pub(crate) fn pool_int8(steps: &mut Vec<Step>, graph_outputs: &[usize], slot_count: usize) -> usize {
    let readers = crate::fuse::sole_readers(steps, graph_outputs, slot_count);
    let mut removed = vec![false; steps.len()];
    for index in 0..steps.len() {
        let Kernel::Tensor(Op::Int8(layer)) = &steps[index].kernel else { continue };
        if !matches!(layer.product, Product::Conv { .. }) || layer.pool.is_some() || !layer.then.is_empty() {
            continue;
        }
        let [Some(slot)] = steps[index].outputs[..] else { continue };
        let Some(Some(reader)) = readers[slot] else { continue };
        let Kernel::Tensor(op) = &steps[reader].kernel else { continue };
        let reads_data =
            matches!(steps[reader].inputs.first(), Some(Some(Read::Clone(read) | Read::Move(read))) if *read == slot);
        let pool = match op {
            Op::MaxPool(max) if !max.indices => Pool::Max(Box::new(max.clone())),
            Op::ReduceMean(ReduceMean(reduction)) => match &reduction.axes {
                IntsInput::Constant(axes) if spatial_axes(&axes[..]) => Pool::Mean { keepdims: reduction.keepdims },
                _ => continue,
            },
            Op::GlobalAveragePool(_) => Pool::Mean { keepdims: true },
            _ => continue,
        };
        if !reads_data || steps[reader].outputs.len() != 1 {
            continue;
        }
        let outputs = steps[reader].outputs.clone();
        if let Kernel::Tensor(Op::Int8(layer)) = &mut steps[index].kernel {
            layer.pool = Some(pool);
        }
        steps[index].outputs = outputs;
        removed[reader] = true;
    }
    crate::fuse::remove_steps(steps, &removed)
}

/// Whether `axes` are exactly the two spatial axes of an NCHW value, in any order and sign.
fn spatial_axes(axes: &[i64]) -> bool {
    let mut normalized: Vec<i64> = axes.iter().map(|&axis| if axis < 0 { axis + 4 } else { axis }).collect();
    normalized.sort_unstable();
    normalized == [2, 3]
}

/// Runs fused layers that only feed each other back to back in one step: a fused step whose one
/// output only the next fused step reads (not a graph output) takes that step's layer into its
/// `then`, and that step goes. Returns how many steps were removed.
///
/// The layers compute what they computed as separate steps: the next layer quantizes the previous
/// one's f32 output as it did before, so the chain is bit for bit the unchained plan. What goes is
/// the value and the step between them: on int8-static digits_mlp (three layers, one chain) the
/// p50 went from 4.8 us to 4.0 us at batch 1 and from 6.1 us to 5.4 us at batch 8, one thread,
/// against fp32 at 4.0 us and 6.0 us in the same minutes.
pub(crate) fn chain_int8(steps: &mut Vec<Step>, graph_outputs: &[usize], slot_count: usize) -> usize {
    let readers = crate::fuse::sole_readers(steps, graph_outputs, slot_count);
    let mut removed = vec![false; steps.len()];
    for index in 0..steps.len() {
        if removed[index] {
            continue;
        }
        // The fused step that alone reads this fused step's one output.
        let next_layer = |steps: &[Step], removed: &[bool]| {
            let Kernel::Tensor(Op::Int8(_)) = &steps[index].kernel else { return None };
            let [Some(slot)] = steps[index].outputs[..] else { return None };
            let next = readers[slot]??;
            let Kernel::Tensor(Op::Int8(_)) = &steps[next].kernel else { return None };
            (steps[next].inputs.len() == 1 && !removed[next]).then_some(next)
        };
        while let Some(next) = next_layer(steps, &removed) {
            let Kernel::Tensor(Op::Int8(layer)) = &steps[next].kernel else { break };
            let mut layer = (**layer).clone();
            let mut layers = std::mem::take(&mut layer.then);
            layers.insert(0, layer);
            let outputs = steps[next].outputs.clone();
            if let Kernel::Tensor(Op::Int8(head)) = &mut steps[index].kernel {
                head.then.extend(layers);
            }
            steps[index].outputs = outputs;
            removed[next] = true;
        }
    }
    crate::fuse::remove_steps(steps, &removed)
}

/// Who produces and who reads each slot.
struct Dataflow {
    /// `(step, output index)` producing each slot.
    producer: Vec<Option<(usize, usize)>>,
    /// Every step reading each slot, once per read.
    readers: Vec<Vec<usize>>,
    is_graph_output: Vec<bool>,
}

impl Dataflow {
    fn new(steps: &[Step], graph_outputs: &[usize], slot_count: usize) -> Dataflow {
        Dataflow::new_without(steps, &vec![false; steps.len()], graph_outputs, slot_count)
    }

    fn new_without(steps: &[Step], removed: &[bool], graph_outputs: &[usize], slot_count: usize) -> Dataflow {
        let mut graph = Dataflow {
            producer: vec![None; slot_count],
            readers: vec![Vec::new(); slot_count],
            is_graph_output: vec![false; slot_count],
        };
        for (index, step) in steps.iter().enumerate().filter(|(index, _)| !removed[*index]) {
            for read in step.inputs.iter().flatten() {
                let (Read::Clone(slot) | Read::Move(slot)) = *read;
                graph.readers[slot].push(index);
            }
            for (position, slot) in step.outputs.iter().enumerate() {
                if let Some(slot) = *slot {
                    graph.producer[slot] = Some((index, position));
                }
            }
        }
        for &slot in graph_outputs {
            graph.is_graph_output[slot] = true;
        }
        graph
    }

    /// The one step reading `slot`, when exactly one read it and it is not a graph output.
    fn only_reader(&self, slot: usize) -> Option<usize> {
        match self.readers[slot][..] {
            [reader] if !self.is_graph_output[slot] => Some(reader),
            _ => None,
        }
    }

    fn unread(&self, slot: usize) -> bool {
        self.readers[slot].is_empty() && !self.is_graph_output[slot]
    }
}

/// One match: the fused op, the slot of its f32 input, its outputs, the steps it replaces outright
/// and the steps that may have become unread.
struct Fused {
    op: Int8Product,
    input: usize,
    outputs: Vec<Option<usize>>,
    consumed: Vec<usize>,
    candidates: Vec<usize>,
}

struct Matcher<'s, 'a> {
    steps: &'s [Step],
    graph: &'s Dataflow,
    constant: &'s dyn Fn(usize) -> Option<&'a Tensor>,
    kernels: Int8Kernels,
}

/// A quantized weight read from its constants: values, zero points (per column or one) and scales
/// (per column or one).
struct QuantizedWeight<'a> {
    tensor: &'a Tensor,
    signed: bool,
    zero_points: Vec<i64>,
    scales: Vec<f32>,
}

impl<'s, 'a> Matcher<'s, 'a> {
    fn op(&self, step: usize) -> Option<&'s Op> {
        match &self.steps[step].kernel {
            Kernel::Tensor(op) => Some(op),
            Kernel::Host(_) => None,
        }
    }

    /// The slot of input `position` of `step`, when present.
    fn input(&self, step: usize, position: usize) -> Option<usize> {
        match self.steps[step].inputs.get(position).copied().flatten()? {
            Read::Clone(slot) | Read::Move(slot) => Some(slot),
        }
    }

    fn constant_input(&self, step: usize, position: usize) -> Option<&'a Tensor> {
        (self.constant)(self.input(step, position)?)
    }

    /// The step producing input `position` of `step` as its output `output`.
    fn producer(&self, step: usize, position: usize, output: usize) -> Option<usize> {
        let (producer, index) = self.graph.producer[self.input(step, position)?]?;
        (index == output).then_some(producer)
    }

    /// The static QDQ form ending in the MatMul, Gemm or Conv at `index`.
    fn static_form(&self, index: usize) -> Option<Fused> {
        let op = self.op(index)?;
        let (product, activation, column_axis, bias_input) = match op {
            Op::MatMul(matmul) => (Product::MatMul, matmul.activation, 1, false),
            Op::Gemm(gemm) => {
                if gemm.trans_a || gemm.alpha != 1.0 || (gemm.beta != 1.0 && self.input(index, 2).is_some()) {
                    return None;
                }
                (Product::Gemm, gemm.activation, usize::from(!gemm.trans_b), true)
            }
            Op::Conv(conv) if conv.group == 1 => {
                let plain = Conv { packed: None, activation: None, ..conv.clone() };
                (Product::Conv { conv: Box::new(plain), w_shape: Vec::new() }, conv.activation, 0, true)
            }
            _ => return None,
        };
        // x: DQ(Q(x)), the Q read by that DQ only, the DQ's output not a graph output.
        let dequantize_x = self.producer(index, 0, 0)?;
        let dequantized = self.input(index, 0)?;
        let quantize_x = self.producer(dequantize_x, 0, 0)?;
        if self.graph.is_graph_output[dequantized] || self.graph.only_reader(self.input(dequantize_x, 0)?) != Some(dequantize_x) {
            return None;
        }
        let quant = self.activation_quant(quantize_x, dequantize_x)?;
        let input = self.input(quantize_x, 0)?;
        // W: DQ(constant), per tensor or per output channel.
        let dequantize_w = self.producer(index, 1, 0)?;
        let weight = self.quantized_weight(dequantize_w, column_axis)?;
        let dims = dims(weight.tensor)?;
        let (k, n, transposed, product) = match product {
            Product::MatMul => match dims[..] {
                [k, n] => (k, n, false, Product::MatMul),
                _ => return None,
            },
            Product::Gemm => match (&dims[..], column_axis) {
                (&[n, k], 0) => (k, n, true, Product::Gemm),
                (&[k, n], _) => (k, n, false, Product::Gemm),
                _ => return None,
            },
            // 2-D only: the 1-D form is not tested here, and keeps ConvInteger/Conv.
            Product::Conv { conv, .. } => {
                if dims.len() != 4 {
                    return None;
                }
                let depth = dims[1..].iter().product();
                (depth, dims[0], true, Product::Conv { conv, w_shape: dims.clone() })
            }
        };
        let bias = match self.input(index, 2).filter(|_| bias_input) {
            None => None,
            Some(slot) => Some(match (self.constant)(slot) {
                Some(tensor) => per_column_values(tensor, n, 1)?,
                None => self.dequantized_bias(self.producer(index, 2, 0)?, n)?,
            }),
        };
        let conv = matches!(product, Product::Conv { .. });
        let (weights, scales) = pack(&weight, k, n, transposed, conv, self.kernels)?;
        let multipliers = scales.iter().map(|&w| quant.scale * w).collect();
        let op_type = match product {
            Product::MatMul => "Int8MatMul",
            Product::Gemm => "Int8Gemm",
            Product::Conv { .. } => "Int8Conv",
        };
        let op = Int8Product {
            op_type,
            product,
            input: InputQuant::Static(quant),
            weights,
            weight_scales: scales,
            multipliers,
            bias,
            activation,
            pool: None,
            then: Vec::new(),
        };
        let mut op = op;
        let mut candidates = vec![quantize_x, dequantize_x, dequantize_w];
        candidates.extend(self.producer(index, 2, 0));
        let (outputs, consumed) = self.following_bias(index, &mut op, n);
        Some(Fused { op, input, outputs, consumed, candidates })
    }

    /// A MatMul's bias, which exporters write as the next node: `Add(product, constant [n])` (and a
    /// Relu after it), taken into `op` when nothing else reads the product. The fused epilogue adds
    /// it as the Add did, one f32 addition after the scaling, so the result is the same (on
    /// transformer_tiny's int8-static model these Adds were 8 steps, 13 us of a 314 us run at batch
    /// 8). Returns the outputs of the last step taken and the steps taken.
    fn following_bias(&self, index: usize, op: &mut Int8Product, n: usize) -> (Vec<Option<usize>>, Vec<usize>) {
        let mut outputs = self.steps[index].outputs.clone();
        let mut consumed = Vec::new();
        if op.product != Product::MatMul || op.bias.is_some() || op.activation.is_some() {
            return (outputs, consumed);
        }
        let Some(product) = outputs.first().copied().flatten() else { return (outputs, consumed) };
        let Some(add) = self.graph.only_reader(product) else { return (outputs, consumed) };
        let (Some(Op::Add(_)), Some(position)) = (self.op(add), self.other_input(add, product)) else {
            return (outputs, consumed);
        };
        let Some(bias) = self.constant_input(add, position).and_then(|b| per_column_values(b, n, 1)) else {
            return (outputs, consumed);
        };
        op.bias = Some(bias);
        consumed.push(add);
        outputs = self.steps[add].outputs.clone();
        if let Some(relu) = outputs.first().copied().flatten().and_then(|slot| self.graph.only_reader(slot)) {
            if matches!(self.op(relu), Some(Op::Relu(_))) && self.steps[relu].inputs.len() == 1 {
                op.activation = Some(Activation::Relu);
                consumed.push(relu);
                outputs = self.steps[relu].outputs.clone();
            }
        }
        (outputs, consumed)
    }

    /// The activation quantization of `Q -> DQ`: a scalar f32 scale and a u8 or i8 zero point,
    /// the same in both, no blocks, the division in f32.
    fn activation_quant(&self, quantize: usize, dequantize: usize) -> Option<ActivationQuant> {
        let (Op::QuantizeLinear(q), Op::DequantizeLinear(dq)) = (self.op(quantize)?, self.op(dequantize)?) else { return None };
        if q.block_size != 0 || dq.block_size != 0 || !matches!(q.precision, None | Some(DataType::F32)) {
            return None;
        }
        if !matches!(dq.output_dtype, None | Some(DataType::F32)) {
            return None;
        }
        let parameters = |step: usize| -> Option<(Vec<u8>, DataType, Option<Vec<u8>>)> {
            let scale =
                self.constant_input(step, 1).filter(|scale| scale.dtype == DataType::F32 && scale.element_count() == Some(1))?;
            let zero = match self.input(step, 2) {
                None => None,
                Some(slot) => Some((self.constant)(slot).filter(|zero| zero.element_count() == Some(1))?),
            };
            let dtype = zero.map_or(DataType::U8, |zero| zero.dtype);
            Some((scale.bytes()?.to_vec(), dtype, zero.and_then(|zero| zero.bytes()).map(<[u8]>::to_vec)))
        };
        let (scale_bytes, dtype, zero) = parameters(quantize)?;
        let output = q.output_dtype.unwrap_or(dtype);
        let signed = int8::signed(dtype)?;
        if output != dtype || parameters(dequantize)? != (scale_bytes.clone(), dtype, zero.clone()) {
            return None;
        }
        let scale = f32::from_le_bytes(scale_bytes.try_into().ok()?);
        let zero_point = zero.map_or(0, |bytes| if signed { i32::from(bytes[0] as i8) } else { i32::from(bytes[0]) });
        (scale.is_finite() && scale > 0.0).then_some(ActivationQuant { scale, zero_point, signed })
    }

    /// `DQ(constant W, constant scale, [constant zero point])`, per tensor or along `column_axis`.
    fn quantized_weight(&self, dequantize: usize, column_axis: usize) -> Option<QuantizedWeight<'a>> {
        let Op::DequantizeLinear(dq) = self.op(dequantize)? else { return None };
        if dq.block_size != 0 || !matches!(dq.output_dtype, None | Some(DataType::F32)) {
            return None;
        }
        let tensor = self.constant_input(dequantize, 0)?;
        let signed = int8::signed(tensor.dtype)?;
        let dims = dims(tensor)?;
        let scale = self.constant_input(dequantize, 1).filter(|scale| scale.dtype == DataType::F32)?;
        let per_channel = scale.element_count()? != 1;
        if per_channel && (scale.dims.len() != 1 || normalize_axis(dq.axis, dims.len()).ok()? != column_axis) {
            return None;
        }
        if per_channel && scale.dims[0] != dims[column_axis] as i64 {
            return None;
        }
        let zero_points = match self.input(dequantize, 2) {
            None => vec![0],
            Some(slot) => {
                let zero = (self.constant)(slot).filter(|zero| zero.dtype == tensor.dtype)?;
                if zero.element_count()? != 1 && zero.dims != scale.dims {
                    return None;
                }
                zero.to_f32_vec()?.iter().map(|&value| value as i64).collect()
            }
        };
        Some(QuantizedWeight { tensor, signed, zero_points, scales: scale.to_f32_vec()? })
    }

    /// `DQ(constant integer bias, scale, [zero point])` as f32 per column, computed as DQ does it:
    /// `(bias - zero_point) * scale` in f32.
    fn dequantized_bias(&self, dequantize: usize, n: usize) -> Option<Vec<f32>> {
        let Op::DequantizeLinear(dq) = self.op(dequantize)? else { return None };
        if dq.block_size != 0 || !matches!(dq.output_dtype, None | Some(DataType::F32)) {
            return None;
        }
        let bias = self
            .constant_input(dequantize, 0)
            .filter(|bias| matches!(bias.dtype, DataType::I32 | DataType::I8 | DataType::U8))?;
        if bias.dims != [n as i64] {
            return None;
        }
        let values = bias.to_f32_vec()?;
        let spread = |tensor: &Tensor| -> Option<Vec<f32>> {
            let values = tensor.to_f32_vec()?;
            match values.len() {
                1 => Some(vec![values[0]; n]),
                count if count == n && tensor.dims.len() == 1 => Some(values),
                _ => None,
            }
        };
        let scale = self.constant_input(dequantize, 1).filter(|scale| scale.dtype == DataType::F32)?;
        let scales = spread(scale)?;
        let zero_points = match self.input(dequantize, 2) {
            None => vec![0.0; n],
            Some(slot) => spread((self.constant)(slot).filter(|zero| zero.dtype == bias.dtype)?)?,
        };
        Some(values.iter().zip(&zero_points).zip(&scales).map(|((&value, &zero), &scale)| (value - zero) * scale).collect())
    }

    /// The dynamic form starting at the MatMulInteger or ConvInteger at `index`.
    fn dynamic_form(&self, index: usize) -> Option<Fused> {
        let (product, column_axis) = match self.op(index)? {
            Op::MatMulInteger(_) => (Product::MatMul, 1),
            Op::ConvInteger(conv) if conv.conv.group == 1 => {
                let plain = Conv { packed: None, activation: None, ..conv.conv.clone() };
                (Product::Conv { conv: Box::new(plain), w_shape: Vec::new() }, 0)
            }
            _ => return None,
        };
        // A and its zero point from one DynamicQuantizeLinear.
        let quantize = self.producer(index, 0, 0)?;
        if !matches!(self.op(quantize)?, Op::DynamicQuantizeLinear(_)) || self.producer(index, 2, 2)? != quantize {
            return None;
        }
        let input = self.input(quantize, 0)?;
        let tensor = self.constant_input(index, 1)?;
        let signed = int8::signed(tensor.dtype)?;
        let dims = dims(tensor)?;
        let n = dims[column_axis.min(dims.len() - 1)];
        let zero_points = match self.input(index, 3) {
            None => vec![0],
            Some(slot) => {
                let zero = (self.constant)(slot).filter(|zero| zero.dtype == tensor.dtype)?;
                let count = zero.element_count()?;
                if count != 1 && (count != n || zero.dims.iter().filter(|&&dim| dim != 1).count() != 1) {
                    return None;
                }
                zero.to_f32_vec()?.iter().map(|&value| value as i64).collect()
            }
        };
        let (k, transposed, product, output_rank) = match product {
            Product::MatMul => match dims[..] {
                [k, _] => (k, false, Product::MatMul, None),
                _ => return None,
            },
            Product::Conv { conv, .. } => {
                if dims.len() != 4 {
                    return None;
                }
                let depth = dims[1..].iter().product();
                let rank = dims.len();
                (depth, true, Product::Conv { conv, w_shape: dims.clone() }, Some(rank))
            }
            Product::Gemm => return None,
        };
        // Cast(to f32) -> Mul(., Mul(x_scale, constant w_scale)).
        let accumulator = self.steps[index].outputs.first().copied().flatten()?;
        let cast = self.graph.only_reader(accumulator)?;
        let Op::Cast(cast_op) = self.op(cast)? else { return None };
        let as_float = self.steps[cast].outputs.first().copied().flatten()?;
        if cast_op.to != DataType::F32 || self.steps[cast].inputs.len() != 1 {
            return None;
        }
        let rescale = self.graph.only_reader(as_float)?;
        let scale_position = self.other_input(rescale, as_float)?;
        let Op::Mul(_) = self.op(rescale)? else { return None };
        let scale_step = self.producer(rescale, scale_position, 0)?;
        if self.graph.only_reader(self.input(rescale, scale_position)?) != Some(rescale) {
            return None;
        }
        let Op::Mul(_) = self.op(scale_step)? else { return None };
        let x_scale = self.steps[quantize].outputs.get(1).copied().flatten()?;
        let w_scale_position = self.other_input(scale_step, x_scale)?;
        let w_scale = self.constant_input(scale_step, w_scale_position).filter(|scale| scale.dtype == DataType::F32)?;
        let weight_scales = per_column_values(w_scale, n, output_rank.map_or(1, |rank| rank - 1))?;
        let mut consumed = vec![cast, rescale];
        let mut last = rescale;
        let mut bias = None;
        if let Some(add) = self.steps[last].outputs[0].and_then(|slot| self.graph.only_reader(slot)) {
            if let (Some(Op::Add(_)), Some(position)) = (self.op(add), self.other_input(add, self.steps[last].outputs[0]?)) {
                if let Some(values) = self
                    .constant_input(add, position)
                    .and_then(|b| per_column_values(b, n, output_rank.map_or(1, |rank| rank - 1)))
                {
                    bias = Some(values);
                    consumed.push(add);
                    last = add;
                }
            }
        }
        let mut activation = None;
        if let Some(relu) = self.steps[last].outputs[0].and_then(|slot| self.graph.only_reader(slot)) {
            if matches!(self.op(relu), Some(Op::Relu(_))) && self.steps[relu].inputs.len() == 1 {
                activation = Some(Activation::Relu);
                consumed.push(relu);
                last = relu;
            }
        }
        let weight = QuantizedWeight { tensor, signed, zero_points, scales: vec![1.0] };
        let conv = matches!(product, Product::Conv { .. });
        let (weights, _) = pack(&weight, k, n, transposed, conv, self.kernels)?;
        let op_type = match product {
            Product::Conv { .. } => "Int8ConvDynamic",
            _ => "Int8MatMulDynamic",
        };
        let op = Int8Product {
            op_type,
            product,
            input: InputQuant::Dynamic,
            weights,
            weight_scales,
            multipliers: Vec::new(),
            bias,
            activation,
            pool: None,
            then: Vec::new(),
        };
        let outputs = self.steps[last].outputs.clone();
        Some(Fused { op, input, outputs, consumed, candidates: vec![quantize, scale_step] })
    }

    /// The position of the input of the two-input `step` that is not `slot`.
    fn other_input(&self, step: usize, slot: usize) -> Option<usize> {
        match (self.input(step, 0)?, self.input(step, 1)?) {
            (first, second) if first == slot && second != slot => Some(1),
            (first, second) if second == slot && first != slot => Some(0),
            _ => None,
        }
    }
}

fn dims(tensor: &Tensor) -> Option<Vec<usize>> {
    tensor.dims.iter().map(|&dim| usize::try_from(dim).ok()).collect()
}

/// The f32 values of a per-column constant, broadcast to `n` values: one value, or `n` values along
/// one axis, followed by `trailing - 1` axes of size 1 (`[n]` for a product's `[..., n]`, `[n, 1, 1]`
/// for a 2-D convolution's `[batch, n, h, w]`), with any leading axes of size 1 no further than the
/// output's rank allows (a product's output rank is only known at run time: no leading axes there).
fn per_column_values(tensor: &Tensor, n: usize, trailing: usize) -> Option<Vec<f32>> {
    let values = tensor.to_f32_vec().filter(|_| tensor.dtype == DataType::F32)?;
    if values.len() == 1 && tensor.dims.len() <= trailing {
        return Some(vec![values[0]; n]);
    }
    let mut expected = vec![n as i64];
    expected.extend(std::iter::repeat_n(1, trailing - 1));
    (tensor.dims == expected && values.len() == n).then_some(values)
}

/// A quantized weight in the kernel's operand form (`[k, n]` stored transposed when `transposed`,
/// for products; `[filters, depth]` for convolutions), with its scales per output channel. With
/// [`Int8Kernels::Best`]: whittle's AVX512-VNNI loops where the CPU has them and the zero points
/// are 0, else rten's exact kernel where there is one (other zero points on VNNI), else the AVX2
/// loops; with [`Int8Kernels::Avx2`] the AVX2 loops alone.
fn pack(
    weight: &QuantizedWeight<'_>,
    k: usize,
    n: usize,
    transposed: bool,
    conv: bool,
    kernels: Int8Kernels,
) -> Option<(Weights, Vec<f32>)> {
    let zero_points = if weight.zero_points.len() == 1 { vec![weight.zero_points[0]; n] } else { weight.zero_points.clone() };
    let scales = if weight.scales.len() == 1 { vec![weight.scales[0]; n] } else { weight.scales.clone() };
    if zero_points.len() != n || scales.len() != n {
        return None;
    }
    let bytes = weight.tensor.bytes().filter(|bytes| bytes.len() == k * n)?;
    let best = kernels == Int8Kernels::Best;
    let rten = best && int8::executor().is_some();
    let rhs_zero = int8::rhs_zero(&zero_points, weight.signed);
    let weights = if conv {
        let [filters, channels, kh, kw] = dims(weight.tensor)?[..] else { return None };
        let shape = [filters, channels, kh, kw];
        let rhs = int8::rhs_bytes(bytes, weight.signed);
        if let Some(direct) = VnniWeights::new(&rhs, &rhs_zero, shape).filter(|_| best) {
            Weights::Direct(direct)
        } else if rten {
            let zero = int8::lhs_zero(&zero_points, weight.signed);
            Weights::Filters { bytes: int8::lhs_bytes(bytes, weight.signed).into_owned(), zero, filters: n, depth: k }
        } else {
            Weights::MaddConv(MaddWeights::new(&rhs, &rhs_zero, shape)?)
        }
    } else {
        let values = int8::rhs_bytes(bytes, weight.signed);
        let values = if transposed { (0..k * n).map(|i| values[(i % n) * k + i / n]).collect() } else { values };
        if let Some(matrix) = VnniMatrix::new(&values, Some(&rhs_zero), k, n).filter(|_| best) {
            Weights::Matrix(matrix)
        } else if rten {
            let packed = ConstantIntRhs::pack_bytes(bytes, weight.signed, k, n, transposed)?;
            Weights::Columns { packed, zero: rhs_zero.iter().any(|&value| value != 0).then_some(rhs_zero) }
        } else {
            Weights::MaddMatrix(MaddMatrix::new(&values, Some(&rhs_zero), k, n)?)
        }
    };
    Some((weights, scales))
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, Attribute, DataType, Model, Node, Tensor};

    use super::*;
    use crate::ops::test_support::{f32_tensor, graph, info, reference_conv2d};
    use crate::plan::Plan;
    use crate::{RuntimeOptions, Session};

    /// Deterministic values in `[-1, 1)`.
    fn ramp(count: usize, seed: usize) -> Vec<f32> {
        (0..count).map(|i| ((i * 37 + seed * 11) % 97) as f32 / 48.5 - 1.0).collect()
    }

    fn bytes_tensor(name: &str, dtype: DataType, dims: Vec<i64>, values: &[i64]) -> Tensor {
        let bytes = match dtype {
            DataType::I32 => values.iter().flat_map(|&value| (value as i32).to_le_bytes()).collect(),
            _ => values.iter().map(|&value| value as u8).collect(),
        };
        Tensor::from_bytes(name, dtype, dims, bytes).unwrap()
    }

    fn with_axis(mut node: Node, axis: Option<i64>) -> Node {
        if let Some(axis) = axis {
            node.attributes.push(Attribute::new("axis", AttrValue::Int(axis)));
        }
        node
    }

    /// One quantized layer: its op, shapes and quantization choices.
    #[derive(Clone, Copy)]
    struct Case {
        op: &'static str,
        x_dims: &'static [i64],
        /// Conv: `[filters, channels, kh, kw]`; Gemm: `[n, k]` (transB); MatMul: `[k, n]`.
        w_dims: &'static [i64],
        signed_x: bool,
        x_zero: i64,
        per_channel: bool,
        relu: bool,
        bias: bool,
        /// Conv's stride along both axes.
        stride: usize,
    }

    impl Case {
        fn filters(&self) -> usize {
            match self.op {
                "MatMul" => self.w_dims[1] as usize,
                _ => self.w_dims[0] as usize,
            }
        }

        fn channel_axis(&self) -> i64 {
            if self.op == "MatMul" {
                1
            } else {
                0
            }
        }

        fn x_scale(&self) -> f32 {
            0.0123
        }

        /// The weights' values, scales and zero points (per channel, or one).
        fn weights(&self) -> (Vec<i64>, Vec<f32>, Vec<i64>) {
            let count = self.w_dims.iter().product::<i64>() as usize;
            let values = (0..count).map(|i| ((i * 53 + 7) % 255) as i64 - 127).collect();
            let channels = if self.per_channel { self.filters() } else { 1 };
            let scales = (0..channels).map(|c| 0.004 + 0.001 * c as f32).collect();
            // Asymmetric per channel, to exercise the zero-point correction of a packed B.
            let zeros = (0..channels).map(|c| [0, 3, -5][c % 3]).collect();
            (values, scales, zeros)
        }

        fn bias(&self) -> Vec<i64> {
            (0..self.filters()).map(|c| c as i64 * 97 - 300).collect()
        }

        /// `y = [Relu](op(DQ(Q(x)), DQ(W)[, DQ(b)]))`; `expose` also returns Q's output, which must
        /// keep the plan unfused.
        fn model(&self, expose: bool) -> Model {
            let zero_type = if self.signed_x { DataType::I8 } else { DataType::U8 };
            let (w, scales, zeros) = self.weights();
            let channels = scales.len() as i64;
            let per_axis = if self.per_channel { vec![channels] } else { vec![] };
            let axis = self.per_channel.then_some(self.channel_axis());
            let mut initializers = vec![
                f32_tensor("xs", vec![], &[self.x_scale()]),
                bytes_tensor("xz", zero_type, vec![], &[self.x_zero]),
                bytes_tensor("w", DataType::I8, self.w_dims.to_vec(), &w),
                f32_tensor("ws", per_axis.clone(), &scales),
                bytes_tensor("wz", DataType::I8, per_axis.clone(), &zeros),
            ];
            let mut nodes = vec![
                Node::new("q", "QuantizeLinear", &["x", "xs", "xz"], &["xq"]),
                Node::new("dq", "DequantizeLinear", &["xq", "xs", "xz"], &["xd"]),
                with_axis(Node::new("dqw", "DequantizeLinear", &["w", "ws", "wz"], &["wd"]), axis),
            ];
            let mut inputs = vec!["xd", "wd"];
            if self.bias {
                let n = self.filters();
                let bias_scales: Vec<f32> = (0..n).map(|c| self.x_scale() * scales[c % scales.len()]).collect();
                initializers.push(bytes_tensor("b", DataType::I32, vec![n as i64], &self.bias()));
                initializers.push(f32_tensor("bs", vec![n as i64], &bias_scales));
                nodes.push(with_axis(Node::new("dqb", "DequantizeLinear", &["b", "bs"], &["bd"]), Some(0)));
                inputs.push("bd");
            }
            let product_out = if self.relu { "t" } else { "y" };
            let mut product = Node::new("layer", self.op, &inputs, &[product_out]);
            match self.op {
                "Gemm" => product.attributes.push(Attribute::new("transB", AttrValue::Int(1))),
                "Conv" => {
                    product.attributes.push(Attribute::new("pads", AttrValue::Ints(vec![1, 1, 1, 1])));
                    product.attributes.push(Attribute::new("strides", AttrValue::Ints(vec![self.stride as i64; 2])));
                }
                _ => {}
            }
            nodes.push(product);
            if self.relu {
                nodes.push(Node::new("relu", "Relu", &["t"], &["y"]));
            }
            let mut outputs = vec![info("y", DataType::F32, None)];
            if expose {
                outputs.push(info("xq", zero_type, None));
            }
            let mut graph = graph("g", nodes, vec![info("x", DataType::F32, Some(self.x_dims))], outputs);
            graph.initializers = initializers;
            Model::new(graph, 10, 18)
        }

        /// The layer in f64 from the ONNX formulas: x quantized as QuantizeLinear does it (f32
        /// division, half to even, zero point, saturation), everything after in f64.
        fn reference(&self, x: &[f32]) -> Vec<f64> {
            let (low, high) = if self.signed_x { (-128.0, 127.0) } else { (0.0, 255.0) };
            let xd: Vec<f64> = x
                .iter()
                .map(|&v| {
                    let q = ((v / self.x_scale()).round_ties_even() + self.x_zero as f32).clamp(low, high);
                    (f64::from(q) - self.x_zero as f64) * f64::from(self.x_scale())
                })
                .collect();
            let (w, scales, zeros) = self.weights();
            let n = self.filters();
            let channel = |index: usize| {
                let c = match self.op {
                    "MatMul" => index % n,
                    "Gemm" => index / self.w_dims[1] as usize,
                    _ => index / (w.len() / n),
                };
                c % scales.len()
            };
            let wd: Vec<f64> =
                w.iter().enumerate().map(|(i, &v)| (v - zeros[channel(i)]) as f64 * f64::from(scales[channel(i)])).collect();
            let bias = |c: usize| {
                if self.bias {
                    self.bias()[c] as f64 * f64::from(self.x_scale() * scales[c % scales.len()])
                } else {
                    0.0
                }
            };
            let mut out = match self.op {
                "Conv" => {
                    let d: Vec<usize> = self.x_dims.iter().map(|&v| v as usize).collect();
                    let wdims: Vec<usize> = self.w_dims.iter().map(|&v| v as usize).collect();
                    let size = |input: usize| (input + 2 - 3) / self.stride + 1;
                    reference_conv2d(
                        [d[0], d[1], d[2], d[3]],
                        [wdims[0], wdims[1], wdims[2], wdims[3]],
                        [size(d[2]), size(d[3])],
                        [self.stride; 2],
                        [1, 1],
                        [1, 1],
                        bias,
                        |xi, wi, _| xd[xi] * wd[wi],
                    )
                }
                _ => {
                    let k = *self.x_dims.last().unwrap() as usize;
                    let rows = xd.len() / k;
                    let weight = |p: usize, j: usize| if self.op == "Gemm" { wd[j * k + p] } else { wd[p * n + j] };
                    (0..rows * n)
                        .map(|i| bias(i % n) + (0..k).map(|p| xd[(i / n) * k + p] * weight(p, i % n)).sum::<f64>())
                        .collect()
                }
            };
            if self.relu {
                out.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            out
        }
    }

    std::thread_local! {
        /// The kernels the helpers below plan with, per test thread.
        static KERNELS: std::cell::Cell<Int8Kernels> = const { std::cell::Cell::new(Int8Kernels::Best) };
    }

    /// The kernel sets that fuse on this CPU: the best ones where rten's or the AVX2 kernel is
    /// exact, and the AVX2 ones alone where AVX2 is present (the same as the best without VNNI).
    fn kernel_sets() -> Vec<Int8Kernels> {
        let mut sets = Vec::new();
        if crate::kernels::int8::executor().is_some() || madd::available() {
            sets.push(Int8Kernels::Best);
        }
        if madd::available() {
            sets.push(Int8Kernels::Avx2);
        }
        sets
    }

    fn options() -> RuntimeOptions {
        RuntimeOptions::default().with_int8_kernels(KERNELS.get())
    }

    fn plan(model: &Model) -> Plan {
        Plan::with_int8_kernels(model, &burn_tensor::Device::flex(), KERNELS.get()).unwrap()
    }

    fn run(model: &Model, x: &[f32], dims: &[i64]) -> Vec<f32> {
        let x = Tensor::from_f32("x", dims.to_vec(), x).unwrap();
        let outputs = Session::new(model, &options()).unwrap().run(vec![("x".into(), x)]).unwrap();
        outputs[0].1.to_f32_vec().unwrap()
    }

    fn steps(model: &Model) -> Vec<String> {
        plan(model).graph.steps.iter().map(|step| step.kernel.op_type().to_string()).collect()
    }

    /// The weights' form of every fused layer of `model`'s plan, chained ones included.
    fn weight_forms(model: &Model) -> Vec<&'static str> {
        fn forms(op: &Int8Product, out: &mut Vec<&'static str>) {
            out.push(match op.weights {
                Weights::Columns { .. } => "columns",
                Weights::Filters { .. } => "filters",
                Weights::Direct(_) => "vnni-conv",
                Weights::Matrix(_) => "vnni-matrix",
                Weights::MaddMatrix(_) => "avx2-matrix",
                Weights::MaddConv(_) => "avx2-conv",
            });
            for next in &op.then {
                forms(next, out);
            }
        }
        let mut out = Vec::new();
        for step in &plan(model).graph.steps {
            if let Kernel::Tensor(Op::Int8(op)) = &step.kernel {
                forms(op, &mut out);
            }
        }
        out
    }

    const BASE: Case = Case {
        op: "Gemm",
        x_dims: &[3, 20],
        w_dims: &[7, 20],
        signed_x: false,
        x_zero: 131,
        per_channel: true,
        relu: true,
        bias: true,
        stride: 1,
    };

    fn static_cases() -> Vec<Case> {
        vec![
            BASE,
            Case { x_dims: &[1, 20], relu: false, per_channel: false, ..BASE },
            Case { signed_x: true, x_zero: -9, ..BASE },
            Case { op: "MatMul", x_dims: &[2, 3, 20], w_dims: &[20, 9], bias: false, ..BASE },
            Case {
                op: "MatMul",
                x_dims: &[1, 20],
                w_dims: &[20, 9],
                bias: false,
                relu: false,
                signed_x: true,
                x_zero: 0,
                ..BASE
            },
            Case { op: "Conv", x_dims: &[2, 3, 5, 4], w_dims: &[4, 3, 3, 3], ..BASE },
            Case { op: "Conv", x_dims: &[2, 3, 7, 6], w_dims: &[5, 3, 3, 3], stride: 2, ..BASE },
            Case {
                op: "Conv",
                x_dims: &[1, 3, 5, 4],
                w_dims: &[4, 3, 3, 3],
                per_channel: false,
                relu: false,
                signed_x: true,
                x_zero: 5,
                ..BASE
            },
        ]
    }

    #[test]
    fn static_layers_fuse_into_one_step_matching_the_unfused_plan_and_f64() {
        for kernels in kernel_sets() {
            KERNELS.set(kernels);
            for case in static_cases() {
                let label = format!("{} x {:?} signed {} per channel {}", case.op, case.x_dims, case.signed_x, case.per_channel);
                let (fused, unfused) = (case.model(false), case.model(true));
                assert_eq!(steps(&fused), vec![format!("Int8{}", case.op)], "{label}");
                if kernels == Int8Kernels::Avx2 {
                    assert!(weight_forms(&fused).iter().all(|form| form.starts_with("avx2")), "{label}");
                }
                assert!(steps(&unfused).len() >= 4, "{label}: {:?}", steps(&unfused));
                let count = case.x_dims.iter().product::<i64>() as usize;
                // Scaled so that some values saturate at both ends of the range.
                let x: Vec<f32> = ramp(count, 1).iter().map(|v| v * 2.5).collect();
                let (got, expected) = (run(&fused, &x, case.x_dims), run(&unfused, &x, case.x_dims));
                let reference = case.reference(&x);
                assert_eq!(got.len(), reference.len(), "{label}");
                for ((&got, &unfused), &reference) in got.iter().zip(&expected).zip(&reference) {
                    let tolerance = 1e-5 * reference.abs().max(1.0);
                    assert!((f64::from(got) - reference).abs() <= tolerance, "{label}: fused {got} vs f64 {reference}");
                    assert!((f64::from(unfused) - reference).abs() <= tolerance, "{label}: unfused {unfused} vs f64 {reference}");
                }
                if case.relu {
                    assert!(got.contains(&0.0) && got.iter().all(|&v| v >= 0.0), "{label}");
                }
            }
        }
    }

    #[test]
    fn patterns_with_other_readers_or_outputs_in_the_middle_stay_unfused() {
        for kernels in kernel_sets() {
            KERNELS.set(kernels);
            // Q's output is a graph output: nothing fuses.
            assert!(!steps(&BASE.model(true)).iter().any(|op| op.starts_with("Int8")));
            // DQ(x)'s output is a graph output.
            let mut model = BASE.model(false);
            model.graph.outputs.push(info("xd", DataType::F32, None));
            assert!(!steps(&model).iter().any(|op| op.starts_with("Int8")));
            // Q's output has a second reader besides its DQ.
            let mut model = BASE.model(false);
            model.graph.nodes.push(Node::new("second", "DequantizeLinear", &["xq", "xs", "xz"], &["xd2"]));
            model.graph.outputs.push(info("xd2", DataType::F32, None));
            assert!(!steps(&model).iter().any(|op| op.starts_with("Int8")));
            // DQ(x) read by a fused layer and by an Add: the layer fuses, Q and DQ stay for the Add.
            let mut model = BASE.model(false);
            model.graph.nodes.push(Node::new("add", "Add", &["xd", "xd"], &["z"]));
            model.graph.outputs.push(info("z", DataType::F32, None));
            let ops = steps(&model);
            assert!(ops.contains(&"Int8Gemm".to_string()) && ops.contains(&"QuantizeLinear".to_string()), "{ops:?}");
            let x = ramp(60, 2);
            let outputs = Session::new(&model, &options())
                .unwrap()
                .run(vec![("x".into(), Tensor::from_f32("x", vec![3, 20], &x).unwrap())])
                .unwrap();
            let reference = BASE.reference(&x);
            for (&got, &reference) in outputs[0].1.to_f32_vec().unwrap().iter().zip(&reference) {
                assert!((f64::from(got) - reference).abs() <= 1e-5 * reference.abs().max(1.0));
            }
            // The Relu's input is a graph output: the Gemm fuses without it, the Relu stays.
            let mut model = BASE.model(false);
            model.graph.outputs.push(info("t", DataType::F32, None));
            assert_eq!(steps(&model), vec!["Int8Gemm", "Relu"]);
            // A transposed A has no fused form.
            let mut model = BASE.model(false);
            let layer = model.graph.nodes.iter_mut().find(|node| node.name == "layer").unwrap();
            layer.attributes.push(Attribute::new("transA", AttrValue::Int(1)));
            model.graph.inputs = vec![info("x", DataType::F32, Some(&[20, 3]))];
            assert!(!steps(&model).iter().any(|op| op.starts_with("Int8")));
        }
    }

    /// The dynamic form: `DynamicQuantizeLinear(x)`, MatMulInteger or ConvInteger with constant
    /// weights, `Cast`, `Mul` by `x_scale * w_scale`, `Add` of the bias and `Relu`; `expose` also
    /// returns the int32 accumulator, which must keep it unfused.
    fn dynamic_model(conv: bool, per_channel: bool, expose: bool) -> (Model, Vec<i64>) {
        let (x_dims, w_dims, scale_dims, bias_dims): (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>) = if conv {
            (vec![2, 3, 5, 4], vec![4, 3, 3, 3], if per_channel { vec![4, 1, 1] } else { vec![] }, vec![4, 1, 1])
        } else {
            (vec![2, 3, 20], vec![20, 6], if per_channel { vec![6] } else { vec![] }, vec![6])
        };
        let filters = if conv { 4 } else { 6 };
        let count = w_dims.iter().product::<i64>() as usize;
        let w: Vec<i64> = (0..count).map(|i| ((i * 53 + 7) % 255) as i64 - 127).collect();
        let scales: Vec<f32> = (0..if per_channel { filters } else { 1 }).map(|c| 0.004 + 0.001 * c as f32).collect();
        let mut integer =
            Node::new("product", if conv { "ConvInteger" } else { "MatMulInteger" }, &["xq", "w", "xz", "wz"], &["acc"]);
        if conv {
            integer.attributes.push(Attribute::new("pads", AttrValue::Ints(vec![1, 1, 1, 1])));
        }
        let mut cast = Node::new("cast", "Cast", &["acc"], &["accf"]);
        cast.attributes.push(Attribute::new("to", AttrValue::Int(1)));
        let nodes = vec![
            Node::new("dql", "DynamicQuantizeLinear", &["x"], &["xq", "xs", "xz"]),
            integer,
            cast,
            Node::new("scale", "Mul", &["xs", "ws"], &["s"]),
            Node::new("rescale", "Mul", &["accf", "s"], &["unbiased"]),
            Node::new("add", "Add", &["unbiased", "b"], &["t"]),
            Node::new("relu", "Relu", &["t"], &["y"]),
        ];
        let mut outputs = vec![info("y", DataType::F32, None)];
        if expose {
            outputs.push(info("acc", DataType::I32, None));
        }
        let mut graph = graph("g", nodes, vec![info("x", DataType::F32, Some(&x_dims))], outputs);
        let bias: Vec<f32> = (0..filters).map(|c| c as f32 * 0.3 - 0.5).collect();
        graph.initializers = vec![
            bytes_tensor("w", DataType::I8, w_dims, &w),
            bytes_tensor("wz", DataType::I8, vec![], &[0]),
            f32_tensor("ws", scale_dims, &scales),
            f32_tensor("b", bias_dims, &bias),
        ];
        (Model::new(graph, 10, 18), x_dims)
    }

    #[test]
    fn dynamic_layers_fuse_and_match_the_unfused_plan_bit_for_bit() {
        for kernels in kernel_sets() {
            KERNELS.set(kernels);
            for conv in [false, true] {
                for per_channel in [false, true] {
                    let (fused, x_dims) = dynamic_model(conv, per_channel, false);
                    let expected_op = if conv { "Int8ConvDynamic" } else { "Int8MatMulDynamic" };
                    assert_eq!(steps(&fused), vec![expected_op]);
                    let (unfused, _) = dynamic_model(conv, per_channel, true);
                    assert_eq!(steps(&unfused).len(), 7);
                    let x: Vec<f32> = ramp(x_dims.iter().product::<i64>() as usize, 3);
                    let (got, expected) = (run(&fused, &x, &x_dims), run(&unfused, &x, &x_dims));
                    assert_eq!(got, expected, "conv {conv} per channel {per_channel}");
                    assert!(got.contains(&0.0) && got.iter().any(|&v| v > 0.0));
                }
            }
        }
    }

    #[test]
    fn a_dynamic_product_whose_cast_has_another_reader_stays_unfused() {
        for kernels in kernel_sets() {
            KERNELS.set(kernels);
            let (mut model, _) = dynamic_model(false, true, false);
            model.graph.outputs.push(info("accf", DataType::F32, None));
            assert!(!steps(&model).iter().any(|op| op.starts_with("Int8")));
            // A bias of the wrong shape keeps the Add outside; the product and scale still fuse.
            let (mut model, _) = dynamic_model(false, true, false);
            model.graph.initializers[3] = f32_tensor("b", vec![2, 3, 6], &[0.5; 36]);
            assert_eq!(steps(&model), vec!["Int8MatMulDynamic", "Add", "Relu"]);
        }
    }

    /// Three static layers back to back, `x -> Gemm+Relu -> MatMul+Relu -> Gemm -> z`, each input
    /// behind its own Q/DQ pair; `expose` also returns the first layer's output `h1`.
    fn three_layer_model(expose: bool) -> Model {
        let (k, hidden, out) = (20usize, 12usize, 5usize);
        let weights = |name: &str, dims: Vec<i64>, seed: usize| {
            let count = dims.iter().product::<i64>() as usize;
            let values: Vec<i64> = (0..count).map(|i| ((i * 53 + seed * 31) % 255) as i64 - 127).collect();
            bytes_tensor(name, DataType::I8, dims, &values)
        };
        let mut initializers = vec![
            weights("w1", vec![hidden as i64, k as i64], 1),
            weights("w2", vec![hidden as i64, hidden as i64], 2),
            weights("w3", vec![out as i64, hidden as i64], 3),
            f32_tensor("ws", vec![], &[0.004]),
        ];
        // Activation scales and zero points per layer input: u8 with a zero point, u8 at 0 (after a
        // Relu), i8.
        let quants = [("u8", DataType::U8, 0.0123f32, 131i64), ("r1", DataType::U8, 0.05, 0), ("r2", DataType::I8, 0.08, -3)];
        let mut nodes = Vec::new();
        let mut previous = "x".to_string();
        for (layer, &(tag, dtype, scale, zero)) in quants.iter().enumerate() {
            let (xs, xz) = (format!("{tag}_s"), format!("{tag}_z"));
            initializers.push(f32_tensor(&xs, vec![], &[scale]));
            initializers.push(bytes_tensor(&xz, dtype, vec![], &[zero]));
            let (q, d, w, wd) = (format!("q{layer}"), format!("d{layer}"), format!("w{}", layer + 1), format!("wd{layer}"));
            nodes.push(Node::new(format!("quantize{layer}"), "QuantizeLinear", &[&previous, &xs, &xz], &[&q]));
            nodes.push(Node::new(format!("dequantize{layer}"), "DequantizeLinear", &[&q, &xs, &xz], &[&d]));
            nodes.push(Node::new(format!("dequantize_w{layer}"), "DequantizeLinear", &[&w, "ws"], &[&wd]));
            let (product_out, output) =
                (format!("p{layer}"), if layer == 2 { "z".to_string() } else { format!("h{}", layer + 1) });
            // The middle layer is a MatMul, its square W read as `[k, n]`.
            let op = if layer == 1 { "MatMul" } else { "Gemm" };
            let mut product = Node::new(format!("layer{layer}"), op, &[&d, &wd], &[&product_out]);
            if layer != 1 {
                product.attributes.push(Attribute::new("transB", AttrValue::Int(1)));
            }
            nodes.push(product);
            if layer < 2 {
                nodes.push(Node::new(format!("relu{layer}"), "Relu", &[&product_out], &[&output]));
            } else {
                nodes.push(Node::new("identity", "Identity", &[&product_out], &[&output]));
            }
            previous = output;
        }
        let mut outputs = vec![info("z", DataType::F32, None)];
        if expose {
            outputs.push(info("h1", DataType::F32, None));
        }
        let mut graph = graph("g", nodes, vec![info("x", DataType::F32, Some(&[4, k as i64]))], outputs);
        graph.initializers = initializers;
        Model::new(graph, 10, 18)
    }

    #[test]
    fn fused_layers_that_feed_only_each_other_run_as_one_chain_bit_for_bit() {
        for kernels in kernel_sets() {
            KERNELS.set(kernels);
            let (chained, exposed) = (three_layer_model(false), three_layer_model(true));
            // The Identity stays: the last product's output has a reader that is not a fused layer.
            assert_eq!(steps(&chained), vec!["Int8Chain", "Identity"]);
            // h1 is a graph output too: the first layer runs alone, the next two still chain.
            assert_eq!(steps(&exposed), vec!["Int8Gemm", "Int8Chain", "Identity"]);
            // The chain holds its weights packed: none of the initializers is uploaded.
            assert!(plan(&chained).graph.constants.is_empty());
            let x: Vec<f32> = ramp(80, 4).iter().map(|v| v * 2.5).collect();
            let (got, unchained) = (run(&chained, &x, &[4, 20]), run(&exposed, &x, &[4, 20]));
            assert_eq!(got, unchained);
            assert!(got.iter().any(|&v| v != 0.0));
            // And the ONNX ops, unfused (every Q output exposed), agree to within the last layer's
            // quantization step: the unfused graph sums dequantized f32 values in f32.
            let mut unfused = three_layer_model(false);
            for (q, dtype) in [("q0", DataType::U8), ("q1", DataType::U8), ("q2", DataType::I8)] {
                unfused.graph.outputs.push(info(q, dtype, None));
            }
            assert!(!steps(&unfused).iter().any(|op| op.starts_with("Int8")));
            let reference = run(&unfused, &x, &[4, 20]);
            for (&got, &reference) in got.iter().zip(&reference) {
                assert!((got - reference).abs() <= 1e-4 * reference.abs().max(1.0), "chain {got} vs unfused {reference}");
            }
        }
    }

    #[test]
    fn a_matmul_takes_the_bias_add_and_relu_after_it_bit_for_bit() {
        for kernels in kernel_sets() {
            KERNELS.set(kernels);
            let case = Case { op: "MatMul", x_dims: &[2, 3, 20], w_dims: &[20, 9], bias: false, relu: false, ..BASE };
            // `y = MatMul(...)`, then `z = Relu(Add(y, b))`; `expose` also returns y, which keeps the Add
            // (and so the Relu) out of the fused step.
            let model = |expose: bool| {
                let mut model = case.model(false);
                let bias: Vec<f32> = (0..9).map(|c| c as f32 * 0.25 - 1.0).collect();
                model.graph.initializers.push(f32_tensor("b", vec![9], &bias));
                model.graph.nodes.push(Node::new("bias", "Add", &["y", "b"], &["t2"]));
                model.graph.nodes.push(Node::new("relu", "Relu", &["t2"], &["z"]));
                model.graph.outputs = vec![info("z", DataType::F32, None)];
                if expose {
                    model.graph.outputs.push(info("y", DataType::F32, None));
                }
                model
            };
            let (fused, kept) = (model(false), model(true));
            assert_eq!(steps(&fused), vec!["Int8MatMul"]);
            assert_eq!(steps(&kept), vec!["Int8MatMul", "Add", "Relu"]);
            let x: Vec<f32> = ramp(120, 5).iter().map(|v| v * 2.5).collect();
            let (got, expected) = (run(&fused, &x, case.x_dims), run(&kept, &x, case.x_dims));
            assert_eq!(got, expected);
            assert!(got.contains(&0.0) && got.iter().any(|&v| v > 0.0));
        }
    }

    #[test]
    fn a_pooling_after_a_fused_convolution_runs_in_its_step_bit_for_bit() {
        let ints = |values: &[i64]| AttrValue::Ints(values.to_vec());
        // `y = pool(Relu(Conv(..)))`; `expose` also returns the convolution's output, which keeps
        // the pooling a step of its own.
        let model = |case: &Case, pool: &str, attributes: Vec<(&str, AttrValue)>, expose: bool| {
            let mut model = case.model(false);
            let mut inputs = vec!["y"];
            if pool == "ReduceMean" {
                model.graph.initializers.push(Tensor::from_i64("axes", vec![2], &[-1, 2]).unwrap());
                inputs.push("axes");
            }
            let mut node = Node::new("pool", pool, &inputs, &["pooled"]);
            node.attributes.extend(attributes.into_iter().map(|(name, value)| Attribute::new(name, value)));
            model.graph.nodes.push(node);
            model.graph.outputs = vec![info("pooled", DataType::F32, None)];
            if expose {
                model.graph.outputs.push(info("y", DataType::F32, None));
            }
            model
        };
        // Symmetric weights (one zero point, 0), which the AVX512-VNNI loops take.
        let conv = Case { op: "Conv", x_dims: &[3, 3, 6, 8], w_dims: &[18, 3, 3, 3], per_channel: false, ..BASE };
        let two_by_two = || vec![("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))];
        // The layer, the pooling op, its attributes and the fused step's name.
        type PoolCase = (Case, &'static str, Vec<(&'static str, AttrValue)>, &'static str);
        let cases: Vec<PoolCase> = vec![
            // Rows of 8 and an even height: pooled in the registers of the 16-pixel loop.
            (conv, "MaxPool", two_by_two(), "Int8ConvMaxPool"),
            // An odd width (7), a window of 3 with padding, ceil mode, a plane of 10x20 (the
            // padded-rows loop): pooled from each image's planes.
            (Case { x_dims: &[2, 3, 5, 7], ..conv }, "MaxPool", two_by_two(), "Int8ConvMaxPool"),
            (
                Case { relu: false, ..conv },
                "MaxPool",
                vec![("kernel_shape", ints(&[3, 3])), ("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))],
                "Int8ConvMaxPool",
            ),
            (
                Case { x_dims: &[2, 3, 10, 20], ..conv },
                "MaxPool",
                vec![("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2])), ("ceil_mode", AttrValue::Int(1))],
                "Int8ConvMaxPool",
            ),
            // Planes of 16 pixels (in registers) and of 30, keepdims 0 and 1.
            (Case { x_dims: &[3, 3, 4, 4], ..conv }, "ReduceMean", vec![("keepdims", AttrValue::Int(0))], "Int8ConvMean"),
            (Case { x_dims: &[2, 3, 5, 6], relu: false, ..conv }, "ReduceMean", vec![], "Int8ConvMean"),
            (Case { x_dims: &[3, 3, 4, 4], ..conv }, "GlobalAveragePool", vec![], "Int8ConvMean"),
            (Case { x_dims: &[2, 3, 5, 6], ..conv }, "GlobalAveragePool", vec![], "Int8ConvMean"),
            // Zero points per filter (rten's kernel where VNNI is): pooled after the product.
            (Case { per_channel: true, ..conv }, "MaxPool", two_by_two(), "Int8ConvMaxPool"),
            (Case { x_dims: &[3, 3, 4, 4], per_channel: true, ..conv }, "ReduceMean", vec![], "Int8ConvMean"),
        ];
        let vnni = crate::kernels::int8::executor().is_some() && is_x86_feature_detected!("avx512vnni");
        for kernels in kernel_sets() {
            KERNELS.set(kernels);
            for (case, pool, attributes, fused_op) in &cases {
                let label = format!("{pool} {attributes:?} after a convolution of {:?}, {kernels:?}", case.x_dims);
                let (fused, kept) = (model(case, pool, attributes.clone(), false), model(case, pool, attributes.clone(), true));
                assert_eq!(steps(&fused), vec![fused_op.to_string()], "{label}");
                assert_eq!(steps(&kept), vec!["Int8Conv".to_string(), pool.to_string()], "{label}");
                if vnni && kernels == Int8Kernels::Best && !case.per_channel {
                    assert_eq!(weight_forms(&fused), vec!["vnni-conv"], "{label}");
                }
                let count = case.x_dims.iter().product::<i64>() as usize;
                let x: Vec<f32> = ramp(count, 3).iter().map(|v| v * 2.5).collect();
                let (got, expected) = (run(&fused, &x, case.x_dims), run(&kept, &x, case.x_dims));
                assert_eq!(got.len(), expected.len(), "{label}");
                if *pool == "GlobalAveragePool" {
                    // The unfused mean is burn's, summed in another order.
                    for (&got, &expected) in got.iter().zip(&expected) {
                        assert!((got - expected).abs() <= 1e-6 * expected.abs().max(1.0), "{label}: {got} vs {expected}");
                    }
                } else {
                    assert_eq!(got, expected, "{label}");
                }
                assert!(got.iter().any(|&v| v != 0.0), "{label}");
            }
        }
    }
}
