//! SpaceToDepth: moves spatial blocks into channels (<https://onnx.ai/onnx/operators/onnx__SpaceToDepth.html>).
//!
//! The inverse of DepthToSpace: X `[N, C, H, W]` becomes `[N, C * b^2, H / b, W / b]`. Opset 28
//! added `mode` (DCR, the only behaviour before, or CRD); 13 only added types. Shares its block
//! rearrangement with DepthToSpace.

use std::ops::RangeInclusive;

use super::depth_to_space::{nchw, parse_blocks, rearrange, BlockMode};
use crate::ops::{Inputs, NodeContext, OpError, Operator};
use crate::value::Value;

/// `Y = X` with `blocksize x blocksize` spatial blocks moved into channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceToDepth {
    pub blocksize: usize,
    pub mode: BlockMode,
}

impl Operator for SpaceToDepth {
    const OP_TYPE: &'static str = "SpaceToDepth";
    const OPSETS: RangeInclusive<i64> = 1..=super::NEWEST_OPSET;
    const ATTRIBUTES: &'static [&'static str] = &["blocksize", "mode"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        if node.opset < 28 && node.node.attribute("mode").is_some() {
            return Err(OpError::attribute("mode", "exists from opset 28 on"));
        }
        let (blocksize, mode) = parse_blocks(node)?;
        Ok(SpaceToDepth { blocksize, mode })
    }

    fn eval(&self, mut inputs: Inputs) -> Result<Vec<Value>, OpError> {
        let x = inputs.take(0)?;
        let [n, c, h, w] = nchw(&x)?;
        let b = self.blocksize;
        if h % b != 0 || w % b != 0 {
            fail!("spatial size {h}x{w} is not a multiple of blocksize {b}");
        }
        let split = [n, c, h / b, b, w / b, b];
        let perm = match self.mode {
            BlockMode::Dcr => [0, 3, 5, 1, 2, 4],
            BlockMode::Crd => [0, 1, 3, 5, 2, 4],
        };
        Ok(vec![rearrange(x, split, perm, [n, c * b * b, h / b, w / b])?])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::AttrValue;

    use crate::ops::test_support::*;

    #[test]
    fn inverts_depth_to_space() {
        // x [1, 2, 2, 2] = 0..8: channel 0 [[0, 1], [2, 3]], channel 1 [[4, 5], [6, 7]]. DCR output
        // channel (row * 2 + col) * 2 + c holds x[c, row, col]; CRD channel c * 4 + row * 2 + col.
        let x: Vec<i64> = (0..8).collect();
        let dcr = node("SpaceToDepth", 1, 1, vec![("blocksize", AttrValue::Int(2))]);
        let out = run(&dcr, 13, vec![i64_value(&[1, 2, 2, 2], &x)]);
        assert_eq!(out[0].shape(), &[1, 8, 1, 1]);
        assert_eq!(out[0].to_i64_vec().unwrap(), vec![0, 4, 1, 5, 2, 6, 3, 7]);
        let crd = node("SpaceToDepth", 1, 1, vec![("blocksize", AttrValue::Int(2)), ("mode", AttrValue::String(b"CRD".to_vec()))]);
        let out = run(&crd, 28, vec![i64_value(&[1, 2, 2, 2], &x)]);
        assert_eq!(out[0].to_i64_vec().unwrap(), x);
    }

    #[test]
    fn errors() {
        let s2d = node("SpaceToDepth", 1, 1, vec![("blocksize", AttrValue::Int(2))]);
        let err = try_run(&s2d, 13, vec![f32_value(&[1, 1, 3, 2], &[0.0; 6])]).unwrap_err();
        assert_eq!(err, "spatial size 3x2 is not a multiple of blocksize 2");
        let crd = node("SpaceToDepth", 1, 1, vec![("blocksize", AttrValue::Int(2)), ("mode", AttrValue::String(b"CRD".to_vec()))]);
        let err = parse(&crd, 13, &[]).unwrap_err();
        assert_eq!(err.to_string(), "node 'n' (SpaceToDepth): attribute 'mode': exists from opset 28 on");
    }
}
