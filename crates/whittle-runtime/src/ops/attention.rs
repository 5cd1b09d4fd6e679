//! Attention: scaled dot-product attention (<https://onnx.ai/onnx/operators/onnx__Attention.html>).
//!
//! Opsets 23 to the newest (schemas 23, 24 and 25). 23 defines the op: 3-D inputs
//! `[batch, seq, heads * head_size]` with `q_num_heads` and `kv_num_heads`, or 4-D ones
//! `[batch, heads, seq, head_size]`; grouped-query attention (fewer key/value heads than query
//! heads, each repeated `q_heads / kv_heads` times, interleaved as the reference does); a bool mask
//! (true attends) or an additive float mask, broadcasting to `[batch, q_heads, q_seq, total_seq]`
//! and padded with -inf when its last axis is shorter; `is_causal`; `scale` (default
//! `1 / sqrt(head_size)`); `softcap`; `past_key`/`past_value` concatenated in front of K and V
//! into `present_key`/`present_value`; `qk_matmul_output` in the four modes; `softmax_precision`.
//! 24 adds the `nonpad_kv_seqlen` input (per-batch valid key counts of an external cache) and
//! bottom-right causal alignment for it; 25 adds `left_window_size`/`right_window_size` (sliding
//! windows) and refuses the head-count attributes with 4-D inputs. Masks of integer type (the
//! schema allows them) are added as numbers, as the reference does.
//!
//! The computation follows the spec's function body and the reference, in Q's dtype: Q and K are
//! each scaled by `sqrt(scale)` (rounded to Q's dtype) before their product, softcap
//! `c * tanh(qk / c)` comes before the mask, the mask and the structural bias (causal frontier
//! `j <= i + offset`, windows, key padding; 0 or -inf, made on the host) are added, and the softmax
//! is the stable one (`exp(x - max)`, a row max of -inf taken as 0, a zero sum as 1), in
//! `softmax_precision` when given, then cast back. A query row whose whole bias is -inf attends no
//! key and is a zero row of Y and of the mode-3 output, not NaN (the spec's errata). The mode-0
//! output is the scaled product before softcap, as the spec says (the reference returns it after
//! softcap; no backend test combines the two). V must have Q's dtype: the schema allows a second
//! float type for V, whose product rule the spec leaves open, so that case is refused.
//!
//! Composed from burn ops only (matmul, elementwise, reductions, expand), so it runs on every
//! device; the fusion pass emits this op, so the common path (float32, no mask) mirrors the
//! reference operation for operation. On burn-flex, f32 attention without a cache, softcap, windows,
//! extra outputs or a padded mask runs as one fused kernel ([`crate::kernels::attention`]), which
//! applies the scale once to the product instead of `sqrt(scale)` to each operand (the same value
//! to f32 rounding).

use std::ops::RangeInclusive;

use burn_tensor::{Bool, DType, Device, Float, Tensor};
use whittle_ir::DataType;

use crate::kernels;
use crate::ops::cast::cast;
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::quant::attribute_since;
use crate::value::{burn_dtype, ElementKind, Value};

/// What `qk_matmul_output` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkOutput {
    /// The scaled product `Q K^T` (mode 0).
    Product,
    /// After softcap (mode 1).
    Softcapped,
    /// After softcap and the mask (mode 2).
    Masked,
    /// The softmax (mode 3).
    Softmax,
}

/// `Y = softmax(Q K^T * scale + bias) V`, with the options of the file's documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Attention {
    pub scale: Option<f32>,
    pub is_causal: bool,
    /// Head counts of 3-D inputs.
    pub q_num_heads: Option<usize>,
    pub kv_num_heads: Option<usize>,
    /// `c` of `c * tanh(x / c)`; 0 for none.
    pub softcap: f32,
    pub qk_output: QkOutput,
    pub softmax_precision: Option<DataType>,
    /// Sliding-window bounds (opset 25); `None` is unbounded.
    pub left_window: Option<usize>,
    pub right_window: Option<usize>,
    /// Opset 25 refuses the head-count attributes with 4-D inputs.
    pub strict_heads: bool,
    /// How many outputs the node names (1 to 4).
    pub outputs: usize,
}

impl Operator for Attention {
    const OP_TYPE: &'static str = "Attention";
    const OPSETS: RangeInclusive<i64> = 23..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &[
        "is_causal",
        "kv_num_heads",
        "q_num_heads",
        "qk_matmul_output_mode",
        "scale",
        "softcap",
        "softmax_precision",
        "left_window_size",
        "right_window_size",
    ];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        attribute_since(node, "left_window_size", 25)?;
        attribute_since(node, "right_window_size", 25)?;
        if node.opset < 24 && node.has_input(6) {
            return Err(OpError::new(format!("input nonpad_kv_seqlen is defined from opset 24, the model imports opset {}", node.opset)));
        }
        let heads = |name: &str| -> Result<Option<usize>, OpError> {
            match node.optional_int(name)? {
                None => Ok(None),
                Some(count) if count > 0 => Ok(Some(count as usize)),
                Some(count) => Err(OpError::attribute(name, format!("must be positive, found {count}"))),
            }
        };
        let window = |name: &str| -> Result<Option<usize>, OpError> {
            match node.int(name, -1)? {
                -1 => Ok(None),
                size if size >= 0 => Ok(Some(size as usize)),
                size => Err(OpError::attribute(name, format!("must be -1 or more, found {size}"))),
            }
        };
        let qk_output = match node.int("qk_matmul_output_mode", 0)? {
            0 => QkOutput::Product,
            1 => QkOutput::Softcapped,
            2 => QkOutput::Masked,
            3 => QkOutput::Softmax,
            mode => return Err(OpError::attribute("qk_matmul_output_mode", format!("must be 0, 1, 2 or 3, found {mode}"))),
        };
        let softmax_precision = match node.optional_int("softmax_precision")? {
            None => None,
            Some(code) => {
                let dtype = i32::try_from(code).map(DataType::from_code).unwrap_or(DataType::Other(-1));
                if !matches!(dtype, DataType::F32 | DataType::F16 | DataType::BF16 | DataType::F64) {
                    return Err(OpError::attribute("softmax_precision", format!("must name f32, f16, bf16 or f64, found {dtype} (code {code})")));
                }
                Some(dtype)
            }
        };
        let softcap = node.float("softcap", 0.0)?;
        if softcap < 0.0 {
            return Err(OpError::attribute("softcap", format!("must be 0 or more, found {softcap}")));
        }
        let scale = match node.node.attribute("scale") {
            // Q and K are each scaled by sqrt(scale), which a negative scale does not have.
            Some(_) => match node.float("scale", 1.0)? {
                scale if scale >= 0.0 => Some(scale),
                scale => return Err(OpError::attribute("scale", format!("must be 0 or more, found {scale}"))),
            },
            None => None,
        };
        let outputs = node.node.outputs.iter().rposition(|name| !name.is_empty()).map_or(1, |last| last + 1);
        Ok(Attention {
            scale,
            is_causal: node.flag("is_causal", false)?,
            q_num_heads: heads("q_num_heads")?,
            kv_num_heads: heads("kv_num_heads")?,
            softcap,
            qk_output,
            softmax_precision,
            left_window: window("left_window_size")?,
            right_window: window("right_window_size")?,
            strict_heads: node.opset >= 25,
            outputs,
        })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let (q, k, v) = (inputs.take(0)?, inputs.take(1)?, inputs.take(2)?);
        let mask = inputs.take_optional(3);
        let (past_key, past_value) = (inputs.take_optional(4), inputs.take_optional(5));
        let nonpad = inputs.take_optional(6);
        if past_key.is_none() && nonpad.is_none() {
            if let Some(y) = self.run_kernel(&q, &k, &v, mask.as_ref())? {
                return Ok(vec![y]);
            }
        }
        let dtype = q.dtype();
        if q.kind() != ElementKind::Float {
            fail!("Q must be a float tensor, got {dtype}");
        }
        for (name, value) in [("K", Some(&k)), ("V", Some(&v)), ("past_key", past_key.as_ref()), ("past_value", past_value.as_ref())] {
            if let Some(value) = value {
                if value.dtype() != dtype {
                    fail!("{name} is {}, expected {dtype} like Q", value.dtype());
                }
            }
        }
        if past_key.is_some() != past_value.is_some() {
            fail!("past_key and past_value must be given together");
        }
        if nonpad.is_some() && past_key.is_some() {
            fail!("nonpad_kv_seqlen cannot be combined with past_key and past_value");
        }
        let three_d = q.rank() == 3;
        let (q, k, v) = self.to_heads(q, k, v)?;
        let [batch, q_heads, q_seq, head_size] = q.dims();
        let [_, kv_heads, _, _] = k.dims();
        let value_size = v.dims()[3];
        if q_heads % kv_heads != 0 {
            fail!("Q's {q_heads} heads are not a multiple of K's {kv_heads}");
        }
        let (past_length, k, v) = match (past_key, past_value) {
            (Some(past_key), Some(past_value)) => {
                let (past_key, past_value) = (past_key.float::<4>()?, past_value.float::<4>()?);
                let past_length = past_key.dims()[2];
                for (name, past, size) in [("past_key", &past_key, head_size), ("past_value", &past_value, value_size)] {
                    let dims = past.dims();
                    if dims != [batch, kv_heads, past_length, size] {
                        fail!("{name} {dims:?} must be [{batch}, {kv_heads}, {past_length}, {size}]");
                    }
                }
                // burn's cat refuses empty parts; an empty cache adds nothing.
                if past_length == 0 {
                    (0, k, v)
                } else {
                    (past_length, Tensor::cat(vec![past_key, k], 2), Tensor::cat(vec![past_value, v], 2))
                }
            }
            _ => (0, k, v),
        };
        let total = k.dims()[2];
        let device = k.device();
        let nonpad = match nonpad {
            Some(lengths) => Some(valid_key_counts(lengths, batch, total)?),
            None => None,
        };
        let dims = [batch, q_heads, q_seq, total];
        let user_bias = match mask {
            Some(mask) => Some(mask_bias(mask, dims, dtype, &device)?),
            None => None,
        };
        let structural = self.structural_bias(dims, past_length, nonpad.as_deref(), dtype, &device)?;
        let bias = match (user_bias, structural) {
            (Some(user), Some(structural)) => Some(user + structural.expand(dims)),
            (bias, None) => bias,
            (None, Some(structural)) => Some(structural.expand(dims)),
        };

        let (present_key, present_value) = (k.clone(), v.clone());
        let repeats = q_heads / kv_heads;
        let (k, v) = (repeat_heads(k, repeats), repeat_heads(v, repeats));
        let scale = match self.scale {
            Some(scale) => f64::from(scale),
            // The reference computes the default in f64.
            None => 1.0 / (head_size as f64).sqrt(),
        }
        .sqrt();
        let product = q.mul_scalar(scale).matmul(k.mul_scalar(scale).swap_dims(2, 3));
        let softcapped = if self.softcap > 0.0 {
            let cap = f64::from(self.softcap);
            product.clone().div_scalar(cap).tanh().mul_scalar(cap)
        } else {
            product.clone()
        };
        let scores = match &bias {
            Some(bias) => softcapped.clone() + bias.clone(),
            None => softcapped.clone(),
        };
        let precision = self.softmax_precision.unwrap_or(dtype);
        let mut probabilities = stable_softmax(scores.clone().cast(burn_float(precision)?)).cast(burn_float(dtype)?);
        if let Some(bias) = &bias {
            // A row with no attendable key, decided on the bias (the scores may be NaN there).
            let masked_rows = bias.clone().max_dim(3).equal_elem(f64::NEG_INFINITY).expand(dims);
            probabilities = probabilities.mask_fill(masked_rows, 0.0);
        }
        let qk_output = match self.qk_output {
            QkOutput::Product => product,
            QkOutput::Softcapped => softcapped,
            QkOutput::Masked => scores,
            QkOutput::Softmax => probabilities.clone(),
        };
        let y = probabilities.matmul(v);
        let y = if three_d {
            Value::from_float(y.swap_dims(1, 2).reshape([batch, q_seq, q_heads * value_size]), dtype)?
        } else {
            Value::from_float(y, dtype)?
        };
        let mut outputs = vec![
            y,
            Value::from_float(present_key, dtype)?,
            Value::from_float(present_value, dtype)?,
            Value::from_float(qk_output, dtype)?,
        ];
        outputs.truncate(self.outputs);
        Ok(outputs)
    }
}

impl Attention {
    /// Y on the fused kernel, or `None` where it does not apply (see the file's documentation) or
    /// the inputs are not ones it checks (the general path then reports what is wrong).
    fn run_kernel(&self, q: &Value, k: &Value, v: &Value, mask: Option<&Value>) -> Result<Option<Value>, OpError> {
        use crate::kernels::attention::{attention, Bias, Heads, Options};
        use crate::kernels::Strided;
        let plain = self.softcap == 0.0
            && self.outputs == 1
            && self.left_window.is_none()
            && self.right_window.is_none()
            && self.softmax_precision.is_none_or(|precision| precision == DataType::F32);
        let rank = q.rank();
        if !plain || !(rank == 3 || rank == 4) || k.rank() != rank || v.rank() != rank {
            return Ok(None);
        }
        let (Some(q_tensor), Some(k_tensor), Some(v_tensor)) = (kernels::flex_f32(q), kernels::flex_f32(k), kernels::flex_f32(v)) else {
            return Ok(None);
        };
        let (q_view, k_view, v_view) = (Strided::new(q_tensor), Strided::new(k_tensor), Strided::new(v_tensor));
        // [batch, heads, seq, size] dims and the strides of batch, head and row.
        let as_heads = |view: &Strided, heads: Option<usize>| -> Option<([usize; 4], [usize; 3])> {
            match (&view.dims[..], &view.strides[..]) {
                (&[batch, seq, hidden], &[batch_stride, row_stride, _]) => {
                    let heads = heads?;
                    (hidden % heads == 0).then(|| ([batch, heads, seq, hidden / heads], [batch_stride, hidden / heads, row_stride]))
                }
                (&[batch, heads, seq, size], &[batch_stride, head_stride, row_stride, _]) => {
                    Some(([batch, heads, seq, size], [batch_stride, head_stride, row_stride]))
                }
                _ => None,
            }
        };
        let heads = |rank_heads| if rank == 3 { rank_heads } else { None };
        if rank == 4 && self.strict_heads && (self.q_num_heads.is_some() || self.kv_num_heads.is_some()) {
            return Ok(None);
        }
        let (Some((q_dims, q_strides)), Some((k_dims, k_strides)), Some((v_dims, v_strides))) = (
            as_heads(&q_view, heads(self.q_num_heads)),
            as_heads(&k_view, heads(self.kv_num_heads)),
            as_heads(&v_view, heads(self.kv_num_heads)),
        ) else {
            return Ok(None);
        };
        let [batch, q_heads, q_seq, head_size] = q_dims;
        let [_, kv_heads, total, _] = k_dims;
        let value_size = v_dims[3];
        let consistent = k_dims[0] == batch
            && v_dims[0] == batch
            && k_dims[3] == head_size
            && v_dims[1] == kv_heads
            && v_dims[2] == total
            && q_heads % kv_heads == 0
            && self.q_num_heads.is_none_or(|count| count == q_heads)
            && self.kv_num_heads.is_none_or(|count| count == kv_heads)
            && ![q_dims, k_dims, v_dims].iter().any(|dims| dims.contains(&0));
        if !consistent {
            return Ok(None);
        }
        let scores = [batch, q_heads, q_seq, total];
        let mask_view = match mask {
            None => None,
            Some(mask) => {
                let fits = |shape: &[usize]| {
                    shape.len() <= 4
                        && shape.last() == Some(&total)
                        && shape.iter().rev().zip(scores.iter().rev()).all(|(&size, &full)| size == 1 || size == full)
                };
                if !fits(mask.shape()) {
                    return Ok(None);
                }
                let mask = mask.clone().unsqueeze_to(4)?;
                let tensor = match mask.dtype() {
                    DataType::F32 => kernels::flex_f32(&mask),
                    DataType::Bool => mask.clone().bool::<4>()?.try_into_primitive::<burn_flex::Flex>().ok(),
                    _ => None,
                };
                match tensor {
                    Some(tensor) if mask.dtype() == DataType::F32 || tensor.dtype() == DType::Bool(burn_tensor::BoolStore::Native) => {
                        Some((Strided::new(tensor), mask.dtype() == DataType::Bool))
                    }
                    _ => return Ok(None),
                }
            }
        };
        let bias = mask_view.as_ref().map(|(view, boolean)| {
            let strides = [view.broadcast_stride(0), view.broadcast_stride(1), view.broadcast_stride(2)];
            if *boolean {
                Bias::Bool { values: view.bytes(), strides }
            } else {
                Bias::Additive { values: view.values(), strides }
            }
        });
        let scale = match self.scale {
            Some(scale) => scale,
            None => (1.0 / (head_size as f64).sqrt()) as f32,
        };
        let (out_shape, out_strides) = if rank == 3 {
            (vec![batch, q_seq, q_heads * value_size], [q_seq * q_heads * value_size, value_size, q_heads * value_size])
        } else {
            (vec![batch, q_heads, q_seq, value_size], [q_heads * q_seq * value_size, q_seq * value_size, value_size])
        };
        let mut out = vec![0.0f32; out_shape.iter().product()];
        attention(
            Heads { values: q_view.values(), strides: q_strides, dims: q_dims },
            Heads { values: k_view.values(), strides: k_strides, dims: k_dims },
            Heads { values: v_view.values(), strides: v_strides, dims: v_dims },
            bias,
            Options { scale, causal: self.is_causal },
            &mut out,
            out_strides,
        );
        Ok(Some(kernels::output(out, &out_shape)?))
    }

    /// Q, K and V as `[batch, heads, seq, head_size]`, checked against each other.
    fn to_heads(&self, q: Value, k: Value, v: Value) -> Result<(Tensor<4>, Tensor<4>, Tensor<4>), OpError> {
        let rank = q.rank();
        if !(rank == 3 || rank == 4) || k.rank() != rank || v.rank() != rank {
            fail!("Q {:?}, K {:?} and V {:?} must all be 3-D or all 4-D", q.shape(), k.shape(), v.shape());
        }
        let (q, k, v) = if rank == 3 {
            let (Some(q_heads), Some(kv_heads)) = (self.q_num_heads, self.kv_num_heads) else {
                fail!("3-D inputs need the q_num_heads and kv_num_heads attributes");
            };
            (split_heads(q, q_heads, "Q")?, split_heads(k, kv_heads, "K")?, split_heads(v, kv_heads, "V")?)
        } else {
            if self.strict_heads && (self.q_num_heads.is_some() || self.kv_num_heads.is_some()) {
                fail!("q_num_heads and kv_num_heads must not be given with 4-D inputs");
            }
            (q.float::<4>()?, k.float::<4>()?, v.float::<4>()?)
        };
        let ([batch, q_heads, _, head_size], [k_batch, kv_heads, kv_seq, k_size], [v_batch, v_heads, v_seq, _]) =
            (q.dims(), k.dims(), v.dims());
        if k_batch != batch || v_batch != batch {
            fail!("Q, K and V must have one batch size, got {batch}, {k_batch} and {v_batch}");
        }
        if k_size != head_size {
            fail!("K's head size {k_size} differs from Q's {head_size}");
        }
        if v_heads != kv_heads || v_seq != kv_seq {
            fail!("V {:?} must have K's heads and sequence length ({kv_heads}, {kv_seq})", v.dims());
        }
        for (name, count, actual) in [("q_num_heads", self.q_num_heads, q_heads), ("kv_num_heads", self.kv_num_heads, kv_heads)] {
            if count.is_some_and(|count| count != actual) {
                fail!("{name} {} disagrees with the inputs' {actual} heads", count.unwrap_or_default());
            }
        }
        if [q.dims(), k.dims(), v.dims()].iter().any(|dims| dims.contains(&0)) {
            fail!("empty inputs are not supported: Q {:?}, K {:?}, V {:?}", q.dims(), k.dims(), v.dims());
        }
        Ok((q, k, v))
    }

    /// The causal, window and key-padding bias, 0 where query `i` may attend key `j` and -inf
    /// elsewhere, as `[batch or 1, 1, q_seq, total]`; `None` when nothing restricts attention.
    fn structural_bias(
        &self,
        [batch, _, q_seq, total]: [usize; 4],
        past_length: usize,
        nonpad: Option<&[usize]>,
        dtype: DataType,
        device: &Device,
    ) -> Result<Option<Tensor<4>>, OpError> {
        let windowed = self.left_window.is_some() || self.right_window.is_some();
        if !self.is_causal && !windowed && nonpad.is_none() {
            return Ok(None);
        }
        let batches = if nonpad.is_some() { batch } else { 1 };
        let mut values = Vec::with_capacity(batches * q_seq * total);
        for b in 0..batches {
            // The count of valid keys before the query block: the cache, or the external cache's
            // valid keys less the queries (negative when there are more queries than keys).
            let offset = match nonpad {
                Some(lengths) => lengths[b] as i64 - q_seq as i64,
                None => past_length as i64,
            };
            for i in 0..q_seq as i64 {
                for j in 0..total as i64 {
                    let distance = i + offset - j;
                    let allowed = (!self.is_causal || distance >= 0)
                        && self.left_window.is_none_or(|left| distance <= left as i64)
                        && self.right_window.is_none_or(|right| -distance <= right as i64)
                        && nonpad.is_none_or(|lengths| (j as usize) < lengths[b]);
                    values.push(if allowed { 0.0 } else { f64::NEG_INFINITY });
                }
            }
        }
        Ok(Some(Value::float_from_f64(values, &[batches, 1, q_seq, total], dtype, device)?.float::<4>()?))
    }
}

/// A 3-D `[batch, seq, heads * size]` input as `[batch, heads, seq, size]`.
fn split_heads(x: Value, heads: usize, name: &str) -> Result<Tensor<4>, OpError> {
    let [batch, seq, hidden] = x.shape() else { fail!("{name} must be 3-D") };
    let (batch, seq, hidden) = (*batch, *seq, *hidden);
    if hidden % heads != 0 {
        fail!("{name}'s hidden size {hidden} is not a multiple of its {heads} heads");
    }
    Ok(x.reshape(&[batch, seq, heads, hidden / heads])?.float::<4>()?.swap_dims(1, 2))
}

/// K or V with each head repeated `repeats` times in place (`h0, h0, h1, h1, ...`), for
/// grouped-query attention.
fn repeat_heads(x: Tensor<4>, repeats: usize) -> Tensor<4> {
    if repeats == 1 {
        return x;
    }
    let [batch, heads, seq, size] = x.dims();
    x.unsqueeze_dim::<5>(2).expand([batch, heads, repeats, seq, size]).reshape([batch, heads * repeats, seq, size])
}

/// The additive bias of `attn_mask` in Q's dtype, as `dims`: a bool mask gives 0 where true and
/// -inf where false, a numeric one is added as it is; a last axis shorter than the keys is padded
/// with -inf (the reference pads even a last axis of 1 rather than broadcasting it).
fn mask_bias(mask: Value, dims: [usize; 4], dtype: DataType, device: &Device) -> Result<Tensor<4>, OpError> {
    if mask.rank() > 4 {
        fail!("attn_mask {:?} has more than 4 axes", mask.shape());
    }
    let mask = mask.unsqueeze_to(4)?;
    let shape = mask.shape().to_vec();
    let fits = (0..3).all(|axis| shape[axis] == 1 || shape[axis] == dims[axis]) && shape[3] <= dims[3] && shape[3] > 0;
    if !fits {
        fail!("attn_mask {shape:?} does not broadcast to {dims:?}");
    }
    let burn_type = burn_float(dtype)?;
    let bias = if mask.kind() == ElementKind::Bool {
        let mask: Tensor<4, Bool> = mask.bool::<4>()?;
        Tensor::<4, Float>::zeros(mask.dims(), (device, burn_type)).mask_fill(mask.bool_not(), f64::NEG_INFINITY)
    } else {
        cast(mask, dtype)?.float::<4>()?
    };
    let bias = if shape[3] < dims[3] {
        let padding = Tensor::<4, Float>::full([shape[0], shape[1], shape[2], dims[3] - shape[3]], f64::NEG_INFINITY, (device, burn_type));
        Tensor::cat(vec![bias, padding], 3)
    } else {
        bias
    };
    Ok(bias.expand(dims))
}

/// The valid key count of each batch from `nonpad_kv_seqlen`, checked.
fn valid_key_counts(lengths: Value, batch: usize, total: usize) -> Result<Vec<usize>, OpError> {
    if lengths.dtype() != DataType::I64 || lengths.shape() != [batch] {
        fail!("nonpad_kv_seqlen must be i64 [{batch}], got {}{:?}", lengths.dtype(), lengths.shape());
    }
    lengths
        .to_i64_vec()?
        .into_iter()
        .map(|count| match usize::try_from(count) {
            Ok(count) if count <= total => Ok(count),
            _ => fail!("nonpad_kv_seqlen value {count} is outside 0..={total}"),
        })
        .collect()
}

/// Softmax along the last axis as the reference computes it: a row max of -inf (a fully masked
/// row) is replaced by 0 so that `exp(x - max)` gives 0 rather than NaN, and a zero sum by 1.
fn stable_softmax(x: Tensor<4>) -> Tensor<4> {
    let dims = x.dims();
    let max = x.clone().max_dim(3);
    let max = max.clone().mask_fill(max.equal_elem(f64::NEG_INFINITY), 0.0);
    let exponentials = (x - max.expand(dims)).exp();
    let sum = exponentials.clone().sum_dim(3);
    let sum = sum.clone().mask_fill(sum.equal_elem(0.0), 1.0);
    exponentials / sum.expand(dims)
}

/// burn's dtype for a float ONNX dtype.
fn burn_float(dtype: DataType) -> Result<DType, OpError> {
    match burn_dtype(dtype) {
        Some((burn_type, ElementKind::Float)) => Ok(burn_type),
        _ => fail!("{dtype} is not a float type"),
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    /// Attention in f64 on row-major 4-D data: `q [heads, q_seq, size]`, `k [kv_heads, total,
    /// size]`, `v [kv_heads, total, value_size]` (batch 1), with `allowed(i, j)` the structural mask
    /// and `softcap` 0 for none. Returns Y `[heads, q_seq, value_size]`.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        [heads, kv_heads, q_seq, total, size, value_size]: [usize; 6],
        scale: f64,
        softcap: f64,
        allowed: impl Fn(usize, usize, usize) -> bool,
    ) -> Vec<f64> {
        let mut y = vec![0.0; heads * q_seq * value_size];
        for h in 0..heads {
            let kv = h / (heads / kv_heads);
            for i in 0..q_seq {
                let scores: Vec<f64> = (0..total)
                    .map(|j| {
                        let dot: f64 =
                            (0..size).map(|d| f64::from(q[(h * q_seq + i) * size + d]) * f64::from(k[(kv * total + j) * size + d])).sum();
                        let score = dot * scale;
                        let score = if softcap > 0.0 { softcap * (score / softcap).tanh() } else { score };
                        if allowed(h, i, j) {
                            score
                        } else {
                            f64::NEG_INFINITY
                        }
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if max == f64::NEG_INFINITY {
                    continue;
                }
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = weights.iter().sum();
                for e in 0..value_size {
                    y[(h * q_seq + i) * value_size + e] =
                        (0..total).map(|j| weights[j] / sum * f64::from(v[(kv * total + j) * value_size + e])).sum::<f64>();
                }
            }
        }
        y
    }

    fn data(count: usize, seed: u32) -> Vec<f32> {
        (0..count).map(|i| ((i as u32 * 7 + seed * 13) % 11) as f32 / 5.0 - 1.0).collect()
    }

    #[test]
    fn grouped_query_causal_3d_matches_f64() {
        // Two query heads share one key/value head; Q has 2 positions, K and V 3, so the causal
        // frontier (no cache, offset 0) lets query i see keys 0..=i.
        let (q, k, v) = (data(8, 1), data(6, 2), data(9, 3));
        let attention = node(
            "Attention",
            3,
            1,
            vec![("q_num_heads", AttrValue::Int(2)), ("kv_num_heads", AttrValue::Int(1)), ("is_causal", AttrValue::Int(1))],
        );
        let out = run(&attention, 23, vec![f32_value(&[1, 2, 4], &q), f32_value(&[1, 3, 2], &k), f32_value(&[1, 3, 3], &v)]);
        // 3-D Q [1, seq 2, heads 2 x size 2] as [heads, seq, size].
        let heads_first = |x: &[f32], seq: usize, heads: usize, size: usize| -> Vec<f32> {
            (0..heads).flat_map(|h| (0..seq).flat_map(move |s| (0..size).map(move |d| x[(s * heads + h) * size + d]))).collect()
        };
        let expected = reference(&heads_first(&q, 2, 2, 2), &k, &v, [2, 1, 2, 3, 2, 3], 1.0 / 2f64.sqrt(), 0.0, |_, i, j| j <= i);
        // Y back to [1, seq, heads x value_size].
        let expected: Vec<f64> = (0..2).flat_map(|s| (0..2).flat_map(move |h| (0..3).map(move |e| (h, s, e)))).map(|(h, s, e)| expected[(h * 2 + s) * 3 + e]).collect();
        assert_close(&out[0], &[1, 2, 6], &expected);
    }

    #[test]
    fn fully_masked_rows_are_zero_and_softcap_comes_before_the_mask() {
        // Row 0 attends key 0 only; row 1 attends nothing and is a zero row of Y and of the
        // mode-3 probabilities.
        let (q, k, v) = (data(4, 4), data(4, 5), data(4, 6));
        let mask = bool_value(&[2, 2], &[true, false, false, false]);
        let attention = node("Attention", 4, 4, vec![("softcap", AttrValue::Float(0.5)), ("qk_matmul_output_mode", AttrValue::Int(3))]);
        let dims = [1, 1, 2, 2];
        let inputs = vec![f32_value(&dims, &q), f32_value(&dims, &k), f32_value(&dims, &v), mask];
        let out = run(&attention, 23, inputs);
        let expected = reference(&q, &k, &v, [1, 1, 2, 2, 2, 2], 1.0 / 2f64.sqrt(), 0.5, |_, i, j| i == 0 && j == 0);
        assert_close(&out[0], &[1, 1, 2, 2], &expected);
        assert_close(&out[3], &[1, 1, 2, 2], &[1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn the_cache_is_prepended_and_shifts_the_causal_frontier() {
        // One cached position and two new ones: query i sees keys 0..=i + 1.
        let (q, k, v, past_key, past_value) = (data(4, 7), data(4, 8), data(4, 9), data(2, 10), data(2, 11));
        let attention = node("Attention", 6, 3, vec![("is_causal", AttrValue::Int(1)), ("scale", AttrValue::Float(0.25))]);
        let dims = [1, 1, 2, 2];
        let inputs = vec![
            f32_value(&dims, &q),
            f32_value(&dims, &k),
            f32_value(&dims, &v),
            bool_value(&[1, 1, 2, 3], &[true; 6]),
            f32_value(&[1, 1, 1, 2], &past_key),
            f32_value(&[1, 1, 1, 2], &past_value),
        ];
        let out = run(&attention, 23, inputs);
        let all_keys: Vec<f32> = past_key.iter().chain(&k).copied().collect();
        let all_values: Vec<f32> = past_value.iter().chain(&v).copied().collect();
        let expected = reference(&q, &all_keys, &all_values, [1, 1, 2, 3, 2, 2], 0.25, 0.0, |_, i, j| j <= i + 1);
        assert_close(&out[0], &[1, 1, 2, 2], &expected);
        let present: Vec<f64> = all_keys.iter().map(|&x| f64::from(x)).collect();
        assert_close(&out[1], &[1, 1, 3, 2], &present);
        assert_eq!(out[2].shape(), &[1, 1, 3, 2]);
    }

    #[test]
    fn bad_inputs_and_attributes_are_errors() {
        let x = || f32_value(&[1, 2, 4], &[0.0; 8]);
        let err = try_run(&node("Attention", 3, 1, vec![]), 23, vec![x(), x(), x()]).unwrap_err();
        assert_eq!(err, "3-D inputs need the q_num_heads and kv_num_heads attributes");
        let heads = node("Attention", 3, 1, vec![("q_num_heads", AttrValue::Int(2)), ("kv_num_heads", AttrValue::Int(4))]);
        let wide = || f32_value(&[1, 2, 8], &[0.0; 16]);
        let err = try_run(&heads, 23, vec![x(), wide(), wide()]).unwrap_err();
        assert_eq!(err, "Q's 2 heads are not a multiple of K's 4");
        let four = || f32_value(&[1, 1, 2, 2], &[0.0; 4]);
        let err = try_run_optional(&node("Attention", 5, 1, vec![]), 23, vec![Some(four()), Some(four()), Some(four()), None, Some(four())]);
        assert_eq!(err.unwrap_err(), "past_key and past_value must be given together");
        let err = parse(&node("Attention", 3, 1, vec![("qk_matmul_output_mode", AttrValue::Int(4))]), 23, &[]).unwrap_err();
        assert!(err.to_string().contains("must be 0, 1, 2 or 3, found 4"), "{err}");
        let err = parse(&node("Attention", 3, 1, vec![("left_window_size", AttrValue::Int(2))]), 24, &[]).unwrap_err();
        assert!(err.to_string().contains("is defined from opset 25"), "{err}");
        let mask = f32_value(&[3, 2], &[0.0; 6]);
        let err = try_run(&node("Attention", 4, 1, vec![]), 23, vec![four(), four(), four(), mask]).unwrap_err();
        assert_eq!(err, "attn_mask [1, 1, 3, 2] does not broadcast to [1, 1, 2, 2]");
    }
}
