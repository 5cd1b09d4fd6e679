//! The reductions (ReduceSum, ReduceMean, ReduceMax, ...): one implementation, parametrised by
//! [`Reducer`], that every `ops/reduce_*.rs` file calls; and [`ArgReduction`], shared by ArgMax and
//! ArgMin.
//!
//! All of them share their attributes and axes rules: the axes are an attribute until the opset
//! where they became an optional input (13 for ReduceSum, 18 for the others), when
//! `noop_with_empty_axes` appeared too; without axes they reduce every axis, unless
//! `noop_with_empty_axes` says to return the data as is. `keepdims` (default 1) keeps reduced axes
//! with size 1. A reduction over no elements (a reduced axis of size 0) gives the reducer's
//! identity: 0 for the sums, 1 for the product, -inf for max and the log sums, +inf for min, NaN
//! for the mean. An f32 mean over trailing axes on flex (global average pooling written as
//! ReduceMean) runs on [`crate::kernels::elementwise::mean_rows`].

use burn_tensor::{Bool, DType, Float, Int, Tensor, TensorData};
use whittle_ir::DataType;

use crate::ops::{fail, normalize_axis, Inputs, IntsInput, NodeContext, OpError};
use crate::value::{burn_dtype, with_rank, ElementKind, Value};

/// The attributes of every reduction.
pub(crate) const ATTRIBUTES: &[&str] = &["axes", "keepdims", "noop_with_empty_axes"];

/// What a reduction computes over the reduced elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reducer {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    /// The sum of absolute values.
    L1,
    /// The square root of the sum of squares.
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

impl Reducer {
    /// The result over no elements.
    fn identity(self) -> f64 {
        match self {
            Reducer::Sum | Reducer::L1 | Reducer::L2 | Reducer::SumSquare => 0.0,
            Reducer::Prod => 1.0,
            Reducer::Mean => f64::NAN,
            Reducer::Max | Reducer::LogSum | Reducer::LogSumExp => f64::NEG_INFINITY,
            Reducer::Min => f64::INFINITY,
        }
    }
}

/// A reduction's parsed attributes and axes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reduction {
    pub keepdims: bool,
    pub noop_with_empty_axes: bool,
    pub axes: IntsInput,
}

impl Reduction {
    /// Parses `node`, whose axes are an input from opset `axes_input_from` on.
    pub(crate) fn parse(node: &NodeContext<'_>, axes_input_from: i64) -> Result<Reduction, OpError> {
        if node.opset < axes_input_from && node.node.attribute("noop_with_empty_axes").is_some() {
            return Err(OpError::attribute("noop_with_empty_axes", format!("exists from opset {axes_input_from} on")));
        }
        Ok(Reduction {
            keepdims: node.flag("keepdims", true)?,
            noop_with_empty_axes: node.flag("noop_with_empty_axes", false)?,
            axes: IntsInput::moved(node, "axes", 1, axes_input_from)?,
        })
    }

    /// Reduces input 0 with `reducer`.
    pub(crate) fn eval(&self, reducer: Reducer, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let axes = self.axes.read(&mut inputs)?.unwrap_or_default();
        let data = inputs.take(0)?;
        if axes.is_empty() && self.noop_with_empty_axes {
            return Ok(vec![data]);
        }
        let rank = data.rank();
        let mut reduced = vec![axes.is_empty(); rank];
        for &axis in &axes {
            let axis = normalize_axis(axis, rank)?;
            if std::mem::replace(&mut reduced[axis], true) {
                fail!("axis {axis} is listed twice in {axes:?}");
            }
        }
        let shape: Vec<usize> = data
            .shape()
            .iter()
            .zip(&reduced)
            .filter_map(|(&size, &reduced)| match (reduced, self.keepdims) {
                (false, _) => Some(size),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect();
        let (dtype, kind, device) = (data.dtype(), data.kind(), data.device());
        let Some((burn_type, _)) = burn_dtype(dtype) else { fail!("dtype {dtype} is not supported") };
        let count: usize = shape.iter().product();
        if count == 0 {
            return Ok(vec![Value::empty(dtype, &shape, &device)?]);
        }
        let float_only =
            !matches!(reducer, Reducer::Sum | Reducer::Max | Reducer::Min | Reducer::Prod | Reducer::L1 | Reducer::SumSquare);
        let bool_allowed = matches!(reducer, Reducer::Max | Reducer::Min);
        if (kind == ElementKind::Int && float_only) || (kind == ElementKind::Bool && !bool_allowed) {
            fail!("{reducer:?} of {dtype} is not implemented");
        }
        if data.element_count() == 0 {
            // Every empty axis is reduced (else the result would be empty too): the identity fills it.
            let identity = reducer.identity();
            let data = match kind {
                ElementKind::Float => TensorData::new(vec![identity; count], [count]).convert_dtype(burn_type),
                ElementKind::Int if identity.is_finite() => {
                    TensorData::new(vec![identity as i64; count], [count]).convert_dtype(burn_type)
                }
                ElementKind::Int => fail!("{reducer:?} of an empty set of {dtype} is undefined"),
                // Max is `any` (false over nothing), min is `all` (true over nothing).
                ElementKind::Bool => TensorData::new(vec![reducer == Reducer::Min; count], [count]),
            };
            let filled = match kind {
                ElementKind::Float => Value::from_float(Tensor::<1, Float>::from_data(data, (&device, burn_type)), dtype)?,
                ElementKind::Int => Value::from_int(Tensor::<1, Int>::from_data(data, (&device, burn_type)), dtype)?,
                ElementKind::Bool => Value::from_typed(Tensor::<1, Bool>::from_data(data, (&device, burn_type)), dtype)?,
            };
            return Ok(vec![filled.reshape(&shape)?]);
        }
        if reducer == Reducer::Mean {
            if let Some(mean) = crate::kernels::elementwise::trailing_mean(&data, &reduced, &shape)? {
                return Ok(vec![mean]);
            }
        }
        // burn keeps reduced axes with size 1; the final reshape drops them when keepdims is 0. A
        // scalar is a burn tensor of shape [1] whose one axis is reduced.
        let axes: Vec<usize> = if rank == 0 { vec![0] } else { (0..rank).filter(|&axis| reduced[axis]).collect() };
        let result = with_rank!(data.burn_rank(), D => match kind {
            ElementKind::Float => Value::from_float(reduce_float(data.float::<D>()?, reducer, &axes), dtype)?,
            ElementKind::Int => {
                let x = data.int::<D>()?;
                let reduced = match reducer {
                    Reducer::Sum => x.sum_dims(&axes),
                    Reducer::Max => x.max_dims(&axes),
                    Reducer::Min => x.min_dims(&axes),
                    Reducer::Prod => x.prod_dims(&axes),
                    Reducer::L1 => x.abs().sum_dims(&axes),
                    Reducer::SumSquare => x.square().sum_dims(&axes),
                    _ => unreachable!("float-only reducers are refused above"),
                };
                Value::from_int(reduced, dtype)?
            }
            ElementKind::Bool => {
                let mut x = data.typed::<D, Bool>()?;
                for &axis in &axes {
                    x = if reducer == Reducer::Max { x.any_dim(axis) } else { x.all_dim(axis) };
                }
                Value::from_typed(x, dtype)?
            }
        });
        Ok(vec![result.reshape(&shape)?])
    }
}

fn reduce_float<const D: usize>(x: Tensor<D, Float>, reducer: Reducer, axes: &[usize]) -> Tensor<D, Float> {
    match reducer {
        Reducer::Sum => x.sum_dims(axes),
        Reducer::Mean => x.mean_dims(axes),
        Reducer::Max => x.max_dims(axes),
        Reducer::Min => x.min_dims(axes),
        Reducer::Prod => x.prod_dims(axes),
        Reducer::L1 => x.abs().sum_dims(axes),
        Reducer::L2 => x.square().sum_dims(axes).sqrt(),
        Reducer::LogSum => x.sum_dims(axes).log(),
        Reducer::SumSquare => x.square().sum_dims(axes),
        Reducer::LogSumExp => {
            // log(sum(exp(x))) = m + log(sum(exp(x - m))) with m the maximum, so that exp cannot
            // overflow; an infinite maximum is replaced by 0, where the shift would give NaN.
            let max = x.clone().max_dims(axes);
            let shift = max.clone().mask_fill(max.is_inf(), 0.0);
            (x - shift.clone()).exp().sum_dims(axes).log() + shift
        }
    }
}

/// ArgMax and ArgMin: the index of the extreme element along one axis, as int64.
///
/// `keepdims` (default 1) keeps the axis with size 1; `select_last_index` (opset 12 on) picks the
/// last of equal extremes instead of the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgReduction {
    pub axis: i64,
    pub keepdims: bool,
    pub select_last_index: bool,
}

/// The attributes of ArgMax and ArgMin.
pub(crate) const ARG_ATTRIBUTES: &[&str] = &["axis", "keepdims", "select_last_index"];

impl ArgReduction {
    pub(crate) fn parse(node: &NodeContext<'_>) -> Result<ArgReduction, OpError> {
        if node.opset < 12 && node.node.attribute("select_last_index").is_some() {
            return Err(OpError::attribute("select_last_index", "exists from opset 12 on"));
        }
        Ok(ArgReduction {
            axis: node.int("axis", 0)?,
            keepdims: node.flag("keepdims", true)?,
            select_last_index: node.flag("select_last_index", false)?,
        })
    }

    /// The index of the maximum (`max`) or minimum along the axis of input 0.
    pub(crate) fn eval(&self, max: bool, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let data = inputs.take(0)?;
        if data.rank() == 0 {
            fail!("data must have rank 1 or more");
        }
        let axis = normalize_axis(self.axis, data.rank())?;
        let size = data.shape()[axis];
        let mut shape = data.shape().to_vec();
        if self.keepdims {
            shape[axis] = 1;
        } else {
            shape.remove(axis);
        }
        if shape.contains(&0) {
            return Ok(vec![Value::empty(DataType::I64, &shape, &data.device())?]);
        }
        if size == 0 {
            fail!("axis {axis} of {:?} is empty: there is no extreme to index", data.shape());
        }
        let last = self.select_last_index;
        let index = with_rank!(data.burn_rank(), D => {
            // burn returns the first of equal extremes; on the flipped axis that is the last one,
            // whose index is counted back from the end.
            let index = match data.kind() {
                ElementKind::Float => {
                    let x = data.float::<D>()?;
                    let x = if last { x.flip([axis]) } else { x };
                    if max { x.argmax(axis) } else { x.argmin(axis) }
                }
                ElementKind::Int => {
                    let x = data.int::<D>()?;
                    let x = if last { x.flip([axis]) } else { x };
                    if max { x.argmax(axis) } else { x.argmin(axis) }
                }
                ElementKind::Bool => fail!("{} of bool is not defined", if max { "ArgMax" } else { "ArgMin" }),
            };
            let index = index.cast(DType::I64);
            let index = if last { index.mul_scalar(-1).add_scalar(size as i64 - 1) } else { index };
            Value::from_int(index, DataType::I64)?
        });
        Ok(vec![index.reshape(&shape)?])
    }
}
