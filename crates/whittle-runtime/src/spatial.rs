//! The window attributes Conv and the pooling ops share: kernel, strides, dilations, pads, auto_pad.

use crate::ops::{fail, NodeContext, OpError};

/// How padding is chosen (`auto_pad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoPad {
    /// The `pads` attribute.
    NotSet,
    /// Output size `ceil(input / stride)`, the odd extra pad at the end.
    SameUpper,
    /// Output size `ceil(input / stride)`, the odd extra pad at the beginning.
    SameLower,
    /// No padding.
    Valid,
}

/// Sliding-window attributes over `spatial` axes, validated at plan time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub auto_pad: AutoPad,
    /// From `kernel_shape`; Conv may infer it from its weights (`None`).
    pub kernel: Option<Vec<usize>>,
    pub strides: Option<Vec<usize>>,
    pub dilations: Option<Vec<usize>>,
    /// `[begin_0, begin_1, ..., end_0, end_1, ...]`, as ONNX orders them.
    pub pads: Option<Vec<usize>>,
}

impl Window {
    pub(crate) fn parse(node: &NodeContext<'_>) -> Result<Window, OpError> {
        let auto_pad = match node.string("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            other => return Err(OpError::attribute("auto_pad", format!("unknown value '{other}'"))),
        };
        let positive = |name: &str| -> Result<Option<Vec<usize>>, OpError> {
            match node.ints(name)? {
                None => Ok(None),
                Some(values) if values.iter().all(|&value| value >= 1) => {
                    Ok(Some(values.iter().map(|&value| value as usize).collect()))
                }
                Some(values) => Err(OpError::attribute(name, format!("values must be 1 or more, found {values:?}"))),
            }
        };
        let pads = match node.ints("pads")? {
            None => None,
            Some(pads) if pads.iter().all(|&pad| pad >= 0) => Some(pads.iter().map(|&pad| pad as usize).collect()),
            Some(pads) => return Err(OpError::attribute("pads", format!("values must be 0 or more, found {pads:?}"))),
        };
        if pads.is_some() && auto_pad != AutoPad::NotSet {
            return Err(OpError::attribute("pads", "cannot be combined with auto_pad"));
        }
        Ok(Window {
            auto_pad,
            kernel: positive("kernel_shape")?,
            strides: positive("strides")?,
            dilations: positive("dilations")?,
            pads,
        })
    }

    /// The window for an input whose spatial sizes are `input`, with `kernel` (from `kernel_shape`
    /// or the weights). Checks lengths, and that the dilated kernel fits the padded input.
    pub(crate) fn resolve(&self, input: &[usize], kernel: &[usize]) -> Result<Resolved, OpError> {
        let axes = input.len();
        let per_axis = |name: &str, values: &Option<Vec<usize>>| -> Result<Vec<usize>, OpError> {
            match values {
                None => Ok(vec![1; axes]),
                Some(values) if values.len() == axes => Ok(values.clone()),
                Some(values) => fail!("{name} {values:?} has {} values for {axes} spatial axes", values.len()),
            }
        };
        if kernel.len() != axes {
            fail!("kernel {kernel:?} has {} sizes for {axes} spatial axes", kernel.len());
        }
        let strides = per_axis("strides", &self.strides)?;
        let dilations = per_axis("dilations", &self.dilations)?;
        let mut padding = Vec::with_capacity(axes);
        for axis in 0..axes {
            let extent = (kernel[axis] - 1) * dilations[axis] + 1;
            padding.push(match self.auto_pad {
                AutoPad::NotSet => match &self.pads {
                    None => (0, 0),
                    Some(pads) if pads.len() == 2 * axes => (pads[axis], pads[axes + axis]),
                    Some(pads) => fail!("pads {pads:?} has {} values for {axes} spatial axes", pads.len()),
                },
                AutoPad::Valid => (0, 0),
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let output = input[axis].div_ceil(strides[axis]);
                    let total = ((output.max(1) - 1) * strides[axis] + extent).saturating_sub(input[axis]);
                    let (small, large) = (total / 2, total - total / 2);
                    if self.auto_pad == AutoPad::SameUpper {
                        (small, large)
                    } else {
                        (large, small)
                    }
                }
            });
            let (begin, end) = padding[axis];
            if input[axis] + begin + end < extent {
                fail!(
                    "window of extent {extent} does not fit spatial axis {axis} of size {} padded by ({begin}, {end})",
                    input[axis]
                );
            }
        }
        Ok(Resolved { kernel: kernel.to_vec(), strides, dilations, padding })
    }
}

/// A window resolved for one input: one entry per spatial axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// `(begin, end)`.
    pub padding: Vec<(usize, usize)>,
}

/// A window over exactly two spatial axes, in the array form burn's 2-D kernels take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window2d {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    pub padding: [(usize, usize); 2],
}

impl Resolved {
    /// The same window as a 2-D one: 1-D windows get a leading axis of size 1, so that the ops can
    /// run every 1-D and 2-D case through burn's 2-D kernels. Callers check that there are at most
    /// two spatial axes.
    pub fn as_2d(&self) -> Window2d {
        let pair = |values: &[usize]| if values.len() == 1 { [1, values[0]] } else { [values[0], values[1]] };
        let padding = if self.padding.len() == 1 { [(0, 0), self.padding[0]] } else { [self.padding[0], self.padding[1]] };
        Window2d { kernel: pair(&self.kernel), strides: pair(&self.strides), dilations: pair(&self.dilations), padding }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(auto_pad: AutoPad, strides: Option<Vec<usize>>) -> Window {
        Window { auto_pad, kernel: None, strides, dilations: None, pads: None }
    }

    #[test]
    fn same_padding_puts_the_odd_pad_where_asked() {
        // Input 5, kernel 4, stride 2: output ceil(5 / 2) = 3 needs (3 - 1) * 2 + 4 - 5 = 3 pads.
        let upper = window(AutoPad::SameUpper, Some(vec![2])).resolve(&[5], &[4]).unwrap();
        assert_eq!(upper.padding, vec![(1, 2)]);
        let lower = window(AutoPad::SameLower, Some(vec![2])).resolve(&[5], &[4]).unwrap();
        assert_eq!(lower.padding, vec![(2, 1)]);
    }

    #[test]
    fn pads_are_begins_then_ends() {
        let window = Window { pads: Some(vec![1, 2, 3, 4]), ..window(AutoPad::NotSet, None) };
        assert_eq!(window.resolve(&[8, 8], &[3, 3]).unwrap().padding, vec![(1, 3), (2, 4)]);
        let err = window.resolve(&[8], &[3]).unwrap_err();
        assert_eq!(err.reason, "pads [1, 2, 3, 4] has 4 values for 1 spatial axes");
    }

    #[test]
    fn kernel_larger_than_the_input_is_an_error() {
        let err = window(AutoPad::Valid, None).resolve(&[2], &[3]).unwrap_err();
        assert_eq!(err.reason, "window of extent 3 does not fit spatial axis 0 of size 2 padded by (0, 0)");
    }
}
