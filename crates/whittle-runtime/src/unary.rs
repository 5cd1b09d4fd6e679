//! Shared machinery of the elementwise unary ops: maps over numeric values, and the definition of
//! an op without attributes whose one output is a map of its one input.
//!
//! Most unary ops differ only in the burn expression they apply and in their opsets, so an op file
//! states those with [`unary_op!`] and keeps its doc line and tests; ops with attributes write their
//! `Operator` by hand over [`map_float!`](crate::value::map_float) or [`map_numeric!`].

/// Applies `$body` (an expression over the tensor `$t` of any rank, valid for both float and int
/// tensors) to a numeric value, keeping its dtype and ONNX shape; bool values are an error.
macro_rules! map_numeric {
    ($value:expr, $t:ident => $body:expr) => {{
        let value: $crate::value::Value = $value;
        let dtype = value.dtype();
        let shape = value.shape().to_vec();
        let result = $crate::value::with_rank!(value.burn_rank(), D => match value.kind() {
            $crate::value::ElementKind::Float => {
                let $t = value.float::<D>()?;
                $crate::value::Value::from_float($body, dtype)?
            }
            $crate::value::ElementKind::Int => {
                let $t = value.int::<D>()?;
                $crate::value::Value::from_int($body, dtype)?
            }
            $crate::value::ElementKind::Bool => $crate::ops::fail!("expected a numeric tensor, got bool"),
        });
        result.reshape(&shape)
    }};
}
pub(crate) use map_numeric;

/// Defines the op `$name` (its ONNX op type) without attributes, over `$opsets`, whose output is
/// `$body` applied to the tensor `$t` of its one input. `float` accepts float inputs only
/// ([`map_float!`](crate::value::map_float)); `numeric` accepts float and int ones ([`map_numeric!`]).
macro_rules! unary_op {
    ($(#[$doc:meta])* $name:ident, $opsets:expr, $kind:ident, $t:ident => $body:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name;

        impl $crate::ops::Operator for $name {
            const OP_TYPE: &'static str = stringify!($name);
            const OPSETS: std::ops::RangeInclusive<i64> = $opsets;
            const ATTRIBUTES: &'static [&'static str] = &[];

            fn parse(_node: &$crate::ops::NodeContext<'_>) -> Result<Self, $crate::ops::OpError> {
                Ok($name)
            }

            fn eval(&self, mut inputs: $crate::ops::Inputs) -> Result<Vec<$crate::value::Value>, $crate::ops::OpError> {
                Ok(vec![$crate::unary::unary_op!(@map $kind, inputs.take(0)?, $t => $body)?])
            }
        }
    };
    (@map float, $value:expr, $t:ident => $body:expr) => {
        $crate::value::map_float!($value, $t => $body)
    };
    (@map numeric, $value:expr, $t:ident => $body:expr) => {
        $crate::unary::map_numeric!($value, $t => $body)
    };
}
pub(crate) use unary_op;
