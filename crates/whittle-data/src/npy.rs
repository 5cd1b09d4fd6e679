//! The NumPy `.npy` format: one array, a small text header, then the elements.
//!
//! Written by hand rather than with a crate: the format is a page long
//! (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>), whittle needs it as raw
//! bytes of any dtype rather than typed vectors, and the crates that read it pull archive formats
//! (bzip2, zstd, aes) that `.npz` files from NumPy never use.

use whittle_ir::{DataType, Tensor, TensorData};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Why bytes are not a usable `.npy` array.
pub(crate) type FormatError = String;

/// Parses `.npy` bytes into a tensor called `name`.
pub(crate) fn decode(name: &str, bytes: &[u8]) -> Result<Tensor, FormatError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy array (bad magic bytes)".into());
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        version => return Err(format!("unsupported .npy version {version}")),
    };
    let data_start = header_start + header_len;
    let header = bytes.get(header_start..data_start).ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let descr = dict_value(header, "descr").ok_or("the .npy header has no 'descr'")?;
    let fortran = dict_value(header, "fortran_order").ok_or("the .npy header has no 'fortran_order'")?;
    let shape = dict_value(header, "shape").ok_or("the .npy header has no 'shape'")?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let (dtype, swap) = dtype_from_descr(descr)?;
    if fortran.trim() != "False" {
        return Err("Fortran-order arrays are not supported: save a C-order array (np.ascontiguousarray)".into());
    }
    let dims = parse_shape(shape)?;
    let count = whittle_ir::element_count(&dims).ok_or("the array's shape is too large")?;
    let element_bytes = dtype.bit_width().map(|bits| bits / 8).unwrap_or(1);
    let expected = count.checked_mul(element_bytes).ok_or("the array's shape is too large")?;
    let data = &bytes[data_start..];
    if data.len() < expected {
        return Err(format!("truncated: shape {dims:?} of {descr} needs {expected} bytes, the file has {}", data.len()));
    }
    let mut data = data[..expected].to_vec();
    if swap {
        data.chunks_exact_mut(element_bytes).for_each(<[u8]>::reverse);
    }
    Tensor::from_bytes(name, dtype, dims, data).map_err(|err| err.to_string())
}

/// Encodes a tensor as `.npy` bytes (version 1.0, C order, little-endian).
pub(crate) fn encode(tensor: &Tensor) -> Result<Vec<u8>, FormatError> {
    let descr = descr_of(tensor.dtype).ok_or_else(|| format!("{} tensors cannot be written to .npy", tensor.dtype))?;
    let TensorData::Bytes(bytes) = &tensor.data else {
        return Err("string tensors cannot be written to .npy".into());
    };
    let shape = match tensor.dims.as_slice() {
        [single] => format!("({single},)"),
        dims => format!("({})", dims.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // NumPy pads the header with spaces so that the data starts on a 64-byte boundary.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.div_ceil(64) * 64 - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + bytes.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(bytes);
    Ok(out)
}

/// The text after `'key':` up to the next top-level comma or closing brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'")).or_else(|| header.find(&format!("\"{key}\"")))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?;
    let mut depth = 0;
    for (index, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..index]),
            _ => {}
        }
    }
    None
}

fn parse_shape(text: &str) -> Result<Vec<i64>, FormatError> {
    let inner = text.trim().strip_prefix('(').and_then(|t| t.strip_suffix(')')).ok_or_else(|| format!("bad shape {text}"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| part.trim_end_matches('L').parse::<i64>().map_err(|_| format!("bad shape {text}")))
        .collect()
}

/// The dtype of a NumPy type string such as `<f4`, and whether its bytes need swapping.
fn dtype_from_descr(descr: &str) -> Result<(DataType, bool), FormatError> {
    let mut chars = descr.chars();
    let order = chars.next().ok_or("empty dtype")?;
    let kind = chars.as_str();
    let big_endian_host = cfg!(target_endian = "big");
    let swap = match order {
        '<' => big_endian_host,
        '>' => !big_endian_host,
        '|' | '=' => false,
        _ => return Err(format!("unsupported dtype '{descr}'")),
    };
    let dtype = match kind {
        "f4" => DataType::F32,
        "f8" => DataType::F64,
        "f2" => DataType::F16,
        "i1" => DataType::I8,
        "i2" => DataType::I16,
        "i4" => DataType::I32,
        "i8" => DataType::I64,
        "u1" => DataType::U8,
        "u2" => DataType::U16,
        "u4" => DataType::U32,
        "u8" => DataType::U64,
        "b1" => DataType::Bool,
        _ => return Err(format!("unsupported dtype '{descr}' (numbers and booleans are supported)")),
    };
    Ok((dtype, swap))
}

fn descr_of(dtype: DataType) -> Option<&'static str> {
    Some(match dtype {
        DataType::F32 => "<f4",
        DataType::F64 => "<f8",
        DataType::F16 => "<f2",
        DataType::I8 => "|i1",
        DataType::I16 => "<i2",
        DataType::I32 => "<i4",
        DataType::I64 => "<i8",
        DataType::U8 => "|u1",
        DataType::U16 => "<u2",
        DataType::U32 => "<u4",
        DataType::U64 => "<u8",
        DataType::Bool => "|b1",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `np.array([[1, 2, 3], [4, 5, 6]], dtype="<i2")` laid out as format version 1.0 specifies.
    fn numpy_i16_2x3() -> Vec<u8> {
        let mut header = "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }".to_string();
        header.push_str(&" ".repeat(128 - 10 - header.len() - 1));
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for value in 1i16..=6 {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn reads_and_writes_numpy_bytes() {
        let bytes = numpy_i16_2x3();
        let tensor = decode("a", &bytes).unwrap();
        assert_eq!((tensor.dtype, tensor.dims.clone()), (DataType::I16, vec![2, 3]));
        assert_eq!(tensor.to_f32_vec(), None);
        assert_eq!(tensor.bytes().unwrap(), &bytes[128..]);
        assert_eq!(encode(&tensor).unwrap(), bytes);
    }

    /// The bytes with one same-length edit inside the text header.
    fn edit_header(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let header = std::str::from_utf8(&bytes[10..128]).unwrap().replace(from, to);
        [&bytes[..10], header.as_bytes(), &bytes[128..]].concat()
    }

    #[test]
    fn big_endian_arrays_are_swapped() {
        let bytes = numpy_i16_2x3();
        let mut swapped = edit_header(&bytes, "<i2", ">i2")[..128].to_vec();
        for value in 1i16..=6 {
            swapped.extend_from_slice(&value.to_be_bytes());
        }
        assert_eq!(decode("a", &swapped).unwrap().bytes(), decode("a", &bytes).unwrap().bytes());
    }

    #[test]
    fn scalars_and_one_dimensional_shapes() {
        assert_eq!(parse_shape("()").unwrap(), Vec::<i64>::new());
        assert_eq!(parse_shape("(5,)").unwrap(), vec![5]);
        let scalar = Tensor::from_f32("s", vec![], &[2.5]).unwrap();
        assert_eq!(decode("s", &encode(&scalar).unwrap()).unwrap(), scalar);
        let vector = Tensor::from_i64("v", vec![3], &[1, -2, 3]).unwrap();
        assert_eq!(decode("v", &encode(&vector).unwrap()).unwrap(), vector);
    }

    #[test]
    fn bad_arrays_say_why() {
        assert_eq!(decode("a", b"PK\x03\x04 not npy").unwrap_err(), "not a .npy array (bad magic bytes)");
        let bytes = numpy_i16_2x3();
        assert_eq!(
            decode("a", &bytes[..bytes.len() - 2]).unwrap_err(),
            "truncated: shape [2, 3] of <i2 needs 12 bytes, the file has 10"
        );
        let fortran = edit_header(&bytes, "'fortran_order': False", "'fortran_order': True ");
        assert!(decode("a", &fortran).unwrap_err().starts_with("Fortran-order"));
        let objects = edit_header(&bytes, "'<i2'", "'|O8'");
        assert!(decode("a", &objects).unwrap_err().starts_with("unsupported dtype '|O8'"));
    }
}
