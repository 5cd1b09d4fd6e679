//! DepthToSpace: moves channel blocks into spatial blocks (<https://onnx.ai/onnx/operators/onnx__DepthToSpace.html>).
//!
//! Opset 11 added `mode` (DCR, the only behaviour before, or CRD); 13 and 28 only added types.
//! X `[N, C, H, W]` becomes `[N, C / b^2, H * b, W * b]` for `blocksize` b: a reshape to 6-D, a
//! permutation and a reshape back, shared with SpaceToDepth.

use std::ops::RangeInclusive;

use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::{ElementKind, Value};

/// How channels are split into blocks: depth-column-row or column-row-depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockMode {
    Dcr,
    Crd,
}

/// Parses `blocksize` (required, at least 1) and `mode` (default DCR).
pub(crate) fn parse_blocks(node: &NodeContext<'_>) -> Result<(usize, BlockMode), OpError> {
    let blocksize = match node.optional_int("blocksize")? {
        None => return Err(OpError::attribute("blocksize", "is required")),
        Some(size) if size >= 1 => size as usize,
        Some(size) => return Err(OpError::attribute("blocksize", format!("must be 1 or more, found {size}"))),
    };
    let mode = match node.string("mode", "DCR")?.as_str() {
        "DCR" => BlockMode::Dcr,
        "CRD" => BlockMode::Crd,
        other => return Err(OpError::attribute("mode", format!("must be DCR or CRD, found '{other}'"))),
    };
    Ok((blocksize, mode))
}

/// `x` reshaped to `split`, its axes permuted by `perm`, reshaped to `output`.
pub(crate) fn rearrange(x: Value, split: [usize; 6], perm: [usize; 6], output: [usize; 4]) -> Result<Value, OpError> {
    let dtype = x.dtype();
    let x = x.reshape(&split)?;
    let permuted = match x.kind() {
        ElementKind::Float => Value::from_float(x.float::<6>()?.permute(perm), dtype)?,
        ElementKind::Int => Value::from_int(x.typed::<6, burn_tensor::Int>()?.permute(perm), dtype)?,
        ElementKind::Bool => fail!("bool tensors are not supported"),
    };
    permuted.reshape(&output)
}

/// The `[N, C, H, W]` of `x`, checked.
pub(crate) fn nchw(x: &Value) -> Result<[usize; 4], OpError> {
    match x.shape() {
        &[n, c, h, w] => Ok([n, c, h, w]),
        shape => fail!("X {shape:?} must have rank 4 (N, C, H, W)"),
    }
}

/// `Y = X` with channel blocks moved into `blocksize x blocksize` spatial blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepthToSpace {
    pub blocksize: usize,
    pub mode: BlockMode,
}

impl Operator for DepthToSpace {
    const OP_TYPE: &'static str = "DepthToSpace";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["blocksize", "mode"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        if node.opset < 11 && node.node.attribute("mode").is_some() {
            return Err(OpError::attribute("mode", "exists from opset 11 on"));
        }
        let (blocksize, mode) = parse_blocks(node)?;
        Ok(DepthToSpace { blocksize, mode })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let [n, c, h, w] = nchw(&x)?;
        let b = self.blocksize;
        if c % (b * b) != 0 {
            fail!("channels {c} are not a multiple of blocksize {b} squared");
        }
        let depth = c / (b * b);
        let (split, perm) = match self.mode {
            BlockMode::Dcr => ([n, b, b, depth, h, w], [0, 3, 4, 1, 5, 2]),
            BlockMode::Crd => ([n, depth, b, b, h, w], [0, 1, 4, 2, 5, 3]),
        };
        Ok(vec![rearrange(x, split, perm, [n, depth, h * b, w * b])?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    fn depth_to_space(mode: &str) -> whittle_ir::Node {
        node("DepthToSpace", 1, 1, vec![("blocksize", AttrValue::Int(2)), ("mode", AttrValue::String(mode.as_bytes().to_vec()))])
    }

    #[test]
    fn dcr_and_crd_orders() {
        // x [1, 4, 1, 1] = [0, 1, 2, 3] to [1, 1, 2, 2]. DCR: channel index = (row * 2 + col) * depth
        // + d, so the block is [[0, 1], [2, 3]]; CRD: channel = d * 4 + row * 2 + col, the same here
        // with depth 1. With 8 channels (depth 2) they differ: DCR puts channels 0, 2, 4, 6 in
        // output channel 0, CRD channels 0, 1, 2, 3.
        let x: Vec<i64> = (0..8).collect();
        let dcr = run(&depth_to_space("DCR"), 13, vec![i64_value(&[1, 8, 1, 1], &x)]);
        assert_eq!(dcr[0].shape(), &[1, 2, 2, 2]);
        assert_eq!(dcr[0].to_i64_vec().unwrap(), vec![0, 2, 4, 6, 1, 3, 5, 7]);
        let crd = run(&depth_to_space("CRD"), 13, vec![i64_value(&[1, 8, 1, 1], &x)]);
        assert_eq!(crd[0].to_i64_vec().unwrap(), x);
    }

    #[test]
    fn spatial_blocks_interleave() {
        // x [1, 4, 1, 2]: channel k holds [k, 10 + k]; output row r, column 2 * j + c takes
        // channel r * 2 + c at position j.
        let x = f32_value(&[1, 4, 1, 2], &[0.0, 10.0, 1.0, 11.0, 2.0, 12.0, 3.0, 13.0]);
        let out = run(&depth_to_space("DCR"), 13, vec![x]);
        assert_close(&out[0], &[1, 1, 2, 4], &[0.0, 1.0, 10.0, 11.0, 2.0, 3.0, 12.0, 13.0]);
    }

    #[test]
    fn errors() {
        let err = try_run(&depth_to_space("DCR"), 13, vec![f32_value(&[1, 3, 1, 1], &[0.0; 3])]).unwrap_err();
        assert_eq!(err, "channels 3 are not a multiple of blocksize 2 squared");
        let err = parse(&node("DepthToSpace", 1, 1, vec![]), 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (DepthToSpace): attribute 'blocksize': is required");
        let err = parse(&depth_to_space("XYZ"), 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (DepthToSpace): attribute 'mode': must be DCR or CRD, found 'XYZ'");
    }
}
