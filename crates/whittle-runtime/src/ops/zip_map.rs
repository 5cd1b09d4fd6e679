//! ZipMap (ai.onnx.ml): each row of a score matrix as a map from class label to score
//! (<https://onnx.ai/onnx/operators/onnx_aionnxml_ZipMap.html>).
//!
//! ai.onnx.ml opset 1, the only version. A host op: its output, `seq(map(int64, float))` or
//! `seq(map(string, float))`, is not a tensor; it is returned as a graph output by
//! `Session::run_values`. Map values are 0-d float tensors, as ONNX test data stores them.

use std::ops::RangeInclusive;

use whittle_ir::{HostValue, MapKeys, MapValue};

use crate::host::{Entry, HostInputs};
use crate::ops::linear_classifier::ClassLabels;
use crate::ops::{HostOperator, NodeContext, OpError};

#[derive(Debug, Clone, PartialEq)]
pub struct ZipMap {
    pub labels: ClassLabels,
}

impl HostOperator for ZipMap {
    const OP_TYPE: &'static str = "ZipMap";
    const DOMAIN: &'static str = "ai.onnx.ml";
    const OPSETS: RangeInclusive<i64> = 1..=1;
    const ATTRIBUTES: &'static [&'static str] = &["classlabels_int64s", "classlabels_strings"];

    fn parse(node: &NodeContext<'_>) -> Result<Self, OpError> {
        Ok(ZipMap { labels: ClassLabels::parse(node, "classlabels_int64s", "classlabels_strings")? })
    }

    fn host_output(&self, _index: usize) -> bool {
        true
    }

    fn eval(&self, mut inputs: HostInputs) -> Result<Vec<Entry>, OpError> {
        let x = inputs.take_tensor(0)?;
        if x.dtype() != whittle_ir::DataType::F32 {
            fail!("ZipMap takes float, got {}", x.dtype());
        }
        let (rows, columns) = match *x.shape() {
            [columns] => (1, columns),
            [rows, columns] => (rows, columns),
            _ => fail!("ZipMap takes X of shape [C] or [N, C], got {:?}", x.shape()),
        };
        if columns != self.labels.len() {
            fail!("X has {columns} columns for {} class labels", self.labels.len());
        }
        let host = x.to_ir("X")?;
        let Some(values) = host.to_f32_vec() else { fail!("reading X failed") };
        let maps = (0..rows)
            .map(|row| {
                let values = values[row * columns..(row + 1) * columns]
                    .iter()
                    .map(|&value| {
                        whittle_ir::Tensor::from_f32("", vec![], &[value])
                            .map(HostValue::Tensor)
                            .map_err(|err| OpError::new(err.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let keys = match &self.labels {
                    ClassLabels::Ints(labels) => MapKeys::Int64(labels.clone()),
                    ClassLabels::Strings(labels) => MapKeys::Strings(labels.clone()),
                };
                Ok(HostValue::Map(MapValue { keys, values }))
            })
            .collect::<Result<Vec<_>, OpError>>()?;
        Ok(vec![Entry::Host(HostValue::Sequence(maps))])
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{AttrValue, HostValue, MapKeys};

    use crate::host::Entry;
    use crate::ops::test_support::*;

    fn zip_map(labels: (&str, AttrValue)) -> whittle_ir::Node {
        let mut node = node("ZipMap", 1, 1, vec![labels]);
        node.domain = "ai.onnx.ml".into();
        node
    }

    #[test]
    fn each_row_becomes_a_map_from_label_to_score() {
        let node = zip_map(("classlabels_strings", AttrValue::Strings(vec![b"cat".to_vec(), b"dog".to_vec()])));
        let outputs = try_run_host(&node, 1, vec![f32_value(&[2, 2], &[0.25, 0.75, 1.0, 0.0])]).unwrap();
        let Entry::Host(HostValue::Sequence(rows)) = &outputs[0] else { panic!("a sequence") };
        assert_eq!(rows.len(), 2);
        let HostValue::Map(second) = &rows[1] else { panic!("a map") };
        assert_eq!(second.keys, MapKeys::Strings(vec!["cat".into(), "dog".into()]));
        let values: Vec<f32> = second
            .values
            .iter()
            .map(|value| match value {
                HostValue::Tensor(tensor) => {
                    assert!(tensor.dims.is_empty(), "scalar values");
                    tensor.to_f32_vec().unwrap()[0]
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(values, vec![1.0, 0.0]);
    }

    #[test]
    fn columns_must_match_the_labels() {
        let node = zip_map(("classlabels_int64s", AttrValue::Ints(vec![1, 2, 3])));
        let err = try_run_host(&node, 1, vec![f32_value(&[1, 2], &[0.5, 0.5])]).unwrap_err();
        assert!(err.contains("2 columns for 3 class labels"), "{err}");
        let err = try_run_host(&zip_map(("classlabels_int64s", AttrValue::Ints(vec![1]))), 1, vec![i64_value(&[1, 1], &[1])])
            .unwrap_err();
        assert!(err.contains("takes float"), "{err}");
    }
}
