//! Value types: tensor shapes with symbolic dimensions, and the sequence, map and optional types around them.

use std::fmt;

use crate::DataType;

/// One dimension of a shape as a model declares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DimValue {
    /// A fixed size.
    Known(i64),
    /// A named size such as `batch`; equal names mean equal sizes.
    Symbolic(String),
    /// Neither a size nor a name.
    Unknown,
}

/// A dimension with its optional denotation (`DATA_BATCH`, `DATA_CHANNEL`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dim {
    pub value: DimValue,
    pub denotation: String,
}

impl Dim {
    pub fn known(size: i64) -> Dim {
        Dim { value: DimValue::Known(size), denotation: String::new() }
    }

    pub fn symbolic(name: impl Into<String>) -> Dim {
        Dim { value: DimValue::Symbolic(name.into()), denotation: String::new() }
    }

    pub fn unknown() -> Dim {
        Dim { value: DimValue::Unknown, denotation: String::new() }
    }

    /// The fixed size, if there is one.
    pub fn size(&self) -> Option<i64> {
        match self.value {
            DimValue::Known(size) => Some(size),
            _ => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            DimValue::Known(size) => write!(f, "{size}"),
            DimValue::Symbolic(name) => f.write_str(name),
            DimValue::Unknown => f.write_str("?"),
        }
    }
}

/// A tensor shape: the list of its dimensions. A scalar has none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// A shape of fixed sizes.
    pub fn known(sizes: &[i64]) -> Shape {
        Shape(sizes.iter().map(|&size| Dim::known(size)).collect())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The sizes when every dimension is fixed.
    pub fn sizes(&self) -> Option<Vec<i64>> {
        self.0.iter().map(Dim::size).collect()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (index, dim) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{dim}")?;
        }
        f.write_str("]")
    }
}

/// The type of a value, as ONNX's `TypeProto` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TypeKind {
    /// No type given.
    Unset,
    /// A dense tensor; `shape` is `None` when even the rank is unknown.
    Tensor { elem: DataType, shape: Option<Shape> },
    /// A sparse tensor.
    SparseTensor { elem: DataType, shape: Option<Shape> },
    /// A sequence of values of one type.
    Sequence(Box<Type>),
    /// A map from a scalar key type to values of one type.
    Map { key: DataType, value: Box<Type> },
    /// A value that may be absent.
    Optional(Box<Type>),
}

/// A value type with its optional denotation (`TENSOR`, `IMAGE`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Type {
    pub kind: TypeKind,
    pub denotation: String,
}

impl Type {
    /// A dense tensor type.
    pub fn tensor(elem: DataType, shape: Option<Shape>) -> Type {
        Type { kind: TypeKind::Tensor { elem, shape }, denotation: String::new() }
    }

    pub fn unset() -> Type {
        Type { kind: TypeKind::Unset, denotation: String::new() }
    }

    /// Element type and shape when this is a dense tensor.
    pub fn as_tensor(&self) -> Option<(DataType, Option<&Shape>)> {
        match &self.kind {
            TypeKind::Tensor { elem, shape } => Some((*elem, shape.as_ref())),
            _ => None,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn tensor(f: &mut fmt::Formatter<'_>, prefix: &str, elem: DataType, shape: &Option<Shape>) -> fmt::Result {
            match shape {
                Some(shape) => write!(f, "{prefix}{elem}{shape}"),
                None => write!(f, "{prefix}{elem}[..]"),
            }
        }
        match &self.kind {
            TypeKind::Unset => f.write_str("?"),
            TypeKind::Tensor { elem, shape } => tensor(f, "", *elem, shape),
            TypeKind::SparseTensor { elem, shape } => tensor(f, "sparse ", *elem, shape),
            TypeKind::Sequence(elem) => write!(f, "seq<{elem}>"),
            TypeKind::Map { key, value } => write!(f, "map<{key},{value}>"),
            TypeKind::Optional(elem) => write!(f, "optional<{elem}>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_shows_symbolic_and_unknown_dims() {
        let shape = Shape(vec![Dim::symbolic("batch"), Dim::known(3), Dim::unknown()]);
        assert_eq!(Type::tensor(DataType::F32, Some(shape)).to_string(), "f32[batch,3,?]");
        assert_eq!(Type::tensor(DataType::I64, Some(Shape::default())).to_string(), "i64[]");
        assert_eq!(Type::tensor(DataType::I64, None).to_string(), "i64[..]");
        let seq = Type { kind: TypeKind::Sequence(Box::new(Type::tensor(DataType::F32, None))), denotation: String::new() };
        assert_eq!(seq.to_string(), "seq<f32[..]>");
    }
}
