//! Element types of tensors, numbered as ONNX numbers them (`TensorProto.DataType`).

use std::fmt;

use serde::{Serialize, Serializer};

macro_rules! data_types {
    ($($variant:ident = $code:literal, $name:literal, $bits:expr;)*) => {
        /// The element type of a tensor.
        ///
        /// Codes are ONNX's; a code this build does not know is kept as `Other` so that a model made
        /// by a newer exporter still loads and saves unchanged.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum DataType {
            $($variant,)*
            Other(i32),
        }

        impl DataType {
            /// Every data type this build knows, in code order.
            pub const ALL: &'static [DataType] = &[$(DataType::$variant,)*];

            /// The type for an ONNX `TensorProto.DataType` code.
            pub fn from_code(code: i32) -> DataType {
                match code {
                    $($code => DataType::$variant,)*
                    other => DataType::Other(other),
                }
            }

            /// The ONNX `TensorProto.DataType` code.
            pub fn code(self) -> i32 {
                match self {
                    $(DataType::$variant => $code,)*
                    DataType::Other(code) => code,
                }
            }

            /// The lowercase name used in text forms and reports (`f32`, `i64`, `f8e4m3fn`, ...).
            pub fn name(self) -> String {
                match self {
                    $(DataType::$variant => $name.to_string(),)*
                    DataType::Other(code) => format!("dtype{code}"),
                }
            }

            /// Bits one element occupies in packed storage; `None` for strings, `Undefined` and unknown codes.
            pub fn bit_width(self) -> Option<usize> {
                match self {
                    $(DataType::$variant => $bits,)*
                    DataType::Other(_) => None,
                }
            }
        }
    };
}

data_types! {
    Undefined = 0, "undefined", None;
    F32 = 1, "f32", Some(32);
    U8 = 2, "u8", Some(8);
    I8 = 3, "i8", Some(8);
    U16 = 4, "u16", Some(16);
    I16 = 5, "i16", Some(16);
    I32 = 6, "i32", Some(32);
    I64 = 7, "i64", Some(64);
    String = 8, "string", None;
    Bool = 9, "bool", Some(8);
    F16 = 10, "f16", Some(16);
    F64 = 11, "f64", Some(64);
    U32 = 12, "u32", Some(32);
    U64 = 13, "u64", Some(64);
    Complex64 = 14, "c64", Some(64);
    Complex128 = 15, "c128", Some(128);
    BF16 = 16, "bf16", Some(16);
    F8E4M3FN = 17, "f8e4m3fn", Some(8);
    F8E4M3FNUZ = 18, "f8e4m3fnuz", Some(8);
    F8E5M2 = 19, "f8e5m2", Some(8);
    F8E5M2FNUZ = 20, "f8e5m2fnuz", Some(8);
    U4 = 21, "u4", Some(4);
    I4 = 22, "i4", Some(4);
    F4E2M1 = 23, "f4e2m1", Some(4);
    F8E8M0 = 24, "f8e8m0", Some(8);
    U2 = 25, "u2", Some(2);
    I2 = 26, "i2", Some(2);
}

impl DataType {
    /// Bytes needed to store `elements` values packed (sub-byte types share bytes, rounded up).
    pub fn storage_bytes(self, elements: usize) -> Option<usize> {
        let bits = self.bit_width()?;
        elements.checked_mul(bits).map(|total| total.div_ceil(8))
    }

    /// Whether the type is a floating-point type of any width.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DataType::F32
                | DataType::F16
                | DataType::BF16
                | DataType::F64
                | DataType::F8E4M3FN
                | DataType::F8E4M3FNUZ
                | DataType::F8E5M2
                | DataType::F8E5M2FNUZ
                | DataType::F4E2M1
                | DataType::F8E8M0
        )
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for DataType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_survive() {
        for &dtype in DataType::ALL {
            assert_eq!(DataType::from_code(dtype.code()), dtype);
        }
        assert_eq!(DataType::from_code(99), DataType::Other(99));
        assert_eq!(DataType::from_code(99).code(), 99);
    }

    #[test]
    fn sub_byte_types_round_storage_up() {
        assert_eq!(DataType::I4.storage_bytes(3), Some(2));
        assert_eq!(DataType::U2.storage_bytes(5), Some(2));
        assert_eq!(DataType::F32.storage_bytes(3), Some(12));
        assert_eq!(DataType::String.storage_bytes(3), None);
    }
}
