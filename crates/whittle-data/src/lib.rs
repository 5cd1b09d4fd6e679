//! User data for whittle: `.npy`, `.npz` and ONNX test data sets read into named tensors, grouped
//! into feeds for a model (one feed = one run of the model), and outputs written back as `.npz`.
//!
//! One data format serves every command that runs a model (`run`, `compare`, calibration,
//! distillation): a `.npz` whose arrays are keyed by model input name with samples along the first
//! axis, split to the model's batch size; or a directory of such files or of ONNX `test_data_set_*`
//! folders, one feed per file or folder, read in sorted order; labels as a `.npy` of class ids.

mod npy;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use whittle_ir::{DataType, DimValue, Tensor, TypeKind, ValueInfo};

/// What can be wrong with a data file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("{path}: {reason}", path = path.display())]
    File { path: PathBuf, reason: String },
    #[error("{path}: input '{input}': {reason}", path = path.display())]
    Input { path: PathBuf, input: String, reason: String },
    #[error(transparent)]
    Onnx(#[from] whittle_onnx::OnnxError),
}

fn file_error(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::File { path: path.to_path_buf(), reason: reason.into() }
}

fn input_error(path: &Path, input: &str, reason: impl Into<String>) -> DataError {
    DataError::Input { path: path.to_path_buf(), input: input.to_string(), reason: reason.into() }
}

/// One set of model inputs, named by input, with the file or folder it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    pub source: String,
    pub tensors: Vec<Tensor>,
}

/// Reads the arrays of a `.npy` (named after the file), `.npz` (named by key) or ONNX `.pb` tensor.
pub fn read_arrays(path: &Path) -> Result<Vec<Tensor>, DataError> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    match extension.as_str() {
        "npy" => {
            let bytes = fs::read(path).map_err(|err| file_error(path, err.to_string()))?;
            let name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
            Ok(vec![npy::decode(&name, &bytes).map_err(|reason| file_error(path, reason))?])
        }
        "npz" => read_npz(path),
        "pb" => {
            let mut tensor = whittle_onnx::load_tensor(path)?;
            if tensor.name.is_empty() {
                tensor.name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
            }
            Ok(vec![tensor])
        }
        _ => Err(file_error(path, "unknown data file type: expected .npy, .npz or .pb")),
    }
}

fn read_npz(path: &Path) -> Result<Vec<Tensor>, DataError> {
    let file = fs::File::open(path).map_err(|err| file_error(path, err.to_string()))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|err| file_error(path, format!("not a .npz archive: {err}")))?;
    let mut tensors = Vec::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|err| file_error(path, err.to_string()))?;
        let entry_name = entry.name().to_string();
        let Some(name) = entry_name.strip_suffix(".npy") else { continue };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|err| file_error(path, format!("{entry_name}: {err}")))?;
        tensors.push(npy::decode(name, &bytes).map_err(|reason| file_error(path, format!("array '{name}': {reason}")))?);
    }
    if tensors.is_empty() {
        return Err(file_error(path, "the archive holds no arrays"));
    }
    Ok(tensors)
}

/// Writes tensors to a `.npz` archive (stored, not compressed), keyed by tensor name, through a
/// temporary file renamed into place. The same tensors give the same bytes.
pub fn write_npz(path: &Path, tensors: &[Tensor]) -> Result<(), DataError> {
    let folder = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let io_error = |err: std::io::Error| file_error(path, err.to_string());
    let temp = whittle_onnx::temp_output_in(folder).map_err(io_error)?;
    let mut writer = zip::ZipWriter::new(temp);
    // A fixed timestamp keeps the archive byte-identical between runs.
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    for tensor in tensors {
        let bytes = npy::encode(tensor).map_err(|reason| file_error(path, format!("array '{}': {reason}", tensor.name)))?;
        writer.start_file(format!("{}.npy", tensor.name), options).map_err(|err| file_error(path, err.to_string()))?;
        writer.write_all(&bytes).map_err(io_error)?;
    }
    let temp = writer.finish().map_err(|err| file_error(path, err.to_string()))?;
    temp.persist(path).map_err(|err| io_error(err.error))?;
    Ok(())
}

/// Reads class labels: a `.npy` of integers, one per sample (shape `[n]` or `[n, 1]`).
pub fn read_labels(path: &Path) -> Result<Vec<i64>, DataError> {
    let mut arrays = read_arrays(path)?;
    if arrays.len() != 1 {
        return Err(file_error(path, format!("expected one array of labels, found {}", arrays.len())));
    }
    let labels = arrays.remove(0);
    if !(labels.dims.len() == 1 || (labels.dims.len() == 2 && labels.dims[1] == 1)) {
        return Err(file_error(path, format!("labels must have shape [n] or [n, 1], found {:?}", labels.dims)));
    }
    integers(&labels).ok_or_else(|| file_error(path, format!("labels must be integer class ids, found {}", labels.dtype)))
}

/// The elements of an integer tensor, widened exactly to i64.
fn integers(tensor: &Tensor) -> Option<Vec<i64>> {
    macro_rules! widen {
        ($ty:ty) => {
            tensor
                .bytes()?
                .chunks_exact(std::mem::size_of::<$ty>())
                .map(|c| c.try_into().ok().map(|b| <$ty>::from_le_bytes(b) as i64))
                .collect()
        };
    }
    match tensor.dtype {
        DataType::I64 => widen!(i64),
        DataType::I32 => widen!(i32),
        DataType::U32 => widen!(u32),
        DataType::I16 => widen!(i16),
        DataType::U16 => widen!(u16),
        DataType::I8 => widen!(i8),
        DataType::U8 => widen!(u8),
        _ => None,
    }
}

/// How a single `.npz` is cut into feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Batching {
    /// The model's batch size: its first input dimension when fixed, else one sample per feed.
    #[default]
    Model,
    /// This many samples per feed (the last feed may be smaller when the batch dimension is symbolic).
    Samples(usize),
}

/// Reads the feeds for a model whose feed inputs are `inputs` from a `.npz` file or a directory.
pub fn load_feeds(path: &Path, inputs: &[ValueInfo], batching: Batching) -> Result<Vec<Feed>, DataError> {
    let metadata = fs::metadata(path).map_err(|err| file_error(path, err.to_string()))?;
    if !metadata.is_dir() {
        let arrays = read_arrays(path)?;
        return split_into_feeds(path, arrays, inputs, batching);
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(path)
        .map_err(|err| file_error(path, err.to_string()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|entry| !entry.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.')))
        .collect();
    entries.sort();
    let mut feeds = Vec::new();
    for entry in entries {
        let tensors = if entry.is_dir() {
            read_test_data_set(&entry, inputs)?
        } else if entry.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz")) {
            read_npz(&entry)?
        } else {
            return Err(file_error(&entry, "unexpected entry in a data folder: expected .npz files or test_data_set_* folders"));
        };
        let tensors = match_inputs(&entry, tensors, inputs)?;
        check_feed(&entry, &tensors, inputs, false)?;
        feeds.push(Feed { source: entry.display().to_string(), tensors });
    }
    if feeds.is_empty() {
        return Err(file_error(path, "the folder holds no .npz files or test_data_set_* folders"));
    }
    Ok(feeds)
}

/// `input_K.pb` of an ONNX test data set, given to the model's feed inputs in order.
fn read_test_data_set(dir: &Path, inputs: &[ValueInfo]) -> Result<Vec<Tensor>, DataError> {
    let mut tensors = Vec::new();
    for (index, input) in inputs.iter().enumerate() {
        let file = dir.join(format!("input_{index}.pb"));
        if !file.exists() {
            return Err(input_error(dir, &input.name, format!("missing input_{index}.pb")));
        }
        let mut tensor = whittle_onnx::load_tensor(&file)?;
        tensor.name = input.name.clone();
        tensors.push(tensor);
    }
    Ok(tensors)
}

/// Orders arrays as the model's inputs, failing on a missing input or an array no input takes.
fn match_inputs(path: &Path, arrays: Vec<Tensor>, inputs: &[ValueInfo]) -> Result<Vec<Tensor>, DataError> {
    let mut by_name: BTreeMap<String, Tensor> = arrays.into_iter().map(|tensor| (tensor.name.clone(), tensor)).collect();
    let mut ordered = Vec::with_capacity(inputs.len());
    for input in inputs {
        match by_name.remove(&input.name) {
            Some(tensor) => ordered.push(tensor),
            None => {
                let available: Vec<&str> = by_name.keys().map(String::as_str).collect();
                return Err(input_error(
                    path,
                    &input.name,
                    format!("no array for this input (arrays left: {})", available.join(", ")),
                ));
            }
        }
    }
    if let Some(extra) = by_name.keys().next() {
        let names: Vec<&str> = inputs.iter().map(|input| input.name.as_str()).collect();
        return Err(file_error(path, format!("array '{extra}' matches no model input (inputs: {})", names.join(", "))));
    }
    Ok(ordered)
}

/// Checks dtypes and shapes against the declared input types; symbolic dimensions must agree
/// across inputs. With `per_sample`, the first dimension is the sample axis and is not compared.
fn check_feed(path: &Path, tensors: &[Tensor], inputs: &[ValueInfo], per_sample: bool) -> Result<(), DataError> {
    let mut symbols: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for (tensor, input) in tensors.iter().zip(inputs) {
        let Some(TypeKind::Tensor { elem, shape }) = input.ty.as_ref().map(|ty| &ty.kind) else { continue };
        if *elem != DataType::Undefined && *elem != tensor.dtype {
            return Err(input_error(path, &input.name, format!("expected {elem}, the data holds {}", tensor.dtype)));
        }
        let Some(shape) = shape else { continue };
        if shape.rank() != tensor.dims.len() {
            return Err(input_error(path, &input.name, format!("expected shape {shape}, the data has shape {:?}", tensor.dims)));
        }
        for (axis, (dim, &size)) in shape.0.iter().zip(&tensor.dims).enumerate() {
            if per_sample && axis == 0 {
                continue;
            }
            match &dim.value {
                DimValue::Known(expected) if *expected != size => {
                    return Err(input_error(
                        path,
                        &input.name,
                        format!("expected shape {shape}, the data has shape {:?} (axis {axis})", tensor.dims),
                    ));
                }
                DimValue::Symbolic(symbol) => {
                    if let Some((seen, other)) = symbols.get(symbol) {
                        if *seen != size {
                            return Err(input_error(
                                path,
                                &input.name,
                                format!("dimension '{symbol}' is {size} here but {seen} in input '{other}'"),
                            ));
                        }
                    } else {
                        symbols.insert(symbol.clone(), (size, input.name.clone()));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Cuts arrays with samples along axis 0 into feeds of the batch size.
fn split_into_feeds(path: &Path, arrays: Vec<Tensor>, inputs: &[ValueInfo], batching: Batching) -> Result<Vec<Feed>, DataError> {
    let arrays = match_inputs(path, arrays, inputs)?;
    check_feed(path, &arrays, inputs, true)?;
    let mut samples: Option<(i64, &str)> = None;
    for tensor in &arrays {
        let Some(&count) = tensor.dims.first() else {
            return Err(input_error(path, &tensor.name, "a scalar has no sample axis to split"));
        };
        match samples {
            Some((seen, other)) if seen != count => {
                return Err(input_error(path, &tensor.name, format!("{count} samples, but input '{other}' has {seen}")));
            }
            _ => samples = Some((count, &tensor.name)),
        }
    }
    let total = samples.map_or(0, |(count, _)| count as usize);
    let fixed_batch = inputs
        .first()
        .and_then(|input| input.ty.as_ref())
        .and_then(|ty| ty.as_tensor())
        .and_then(|(_, shape)| shape?.0.first()?.size());
    let batch = match (batching, fixed_batch) {
        (Batching::Samples(0), _) => return Err(file_error(path, "a batch needs at least one sample")),
        (Batching::Samples(size), Some(fixed)) if size as i64 != fixed => {
            return Err(file_error(path, format!("the model's batch size is fixed at {fixed}, not {size}")))
        }
        (Batching::Samples(size), _) => size,
        (Batching::Model, Some(fixed)) => fixed.max(1) as usize,
        (Batching::Model, None) => 1,
    };
    if total == 0 {
        return Err(file_error(path, "the data holds no samples"));
    }
    if fixed_batch.is_some() && !total.is_multiple_of(batch) {
        return Err(file_error(path, format!("{total} samples do not split into batches of the model's fixed size {batch}")));
    }
    let mut feeds = Vec::new();
    for start in (0..total).step_by(batch) {
        let end = (start + batch).min(total);
        let tensors = arrays.iter().map(|tensor| slice_samples(path, tensor, start, end)).collect::<Result<Vec<_>, _>>()?;
        feeds.push(Feed { source: format!("{} [{start}..{end}]", path.display()), tensors });
    }
    Ok(feeds)
}

/// Samples `start..end` along axis 0.
fn slice_samples(path: &Path, tensor: &Tensor, start: usize, end: usize) -> Result<Tensor, DataError> {
    let rows = tensor.dims[0] as usize;
    let bytes = tensor.bytes().unwrap_or_default();
    let row_bytes = bytes.len().checked_div(rows).unwrap_or(0);
    let mut dims = tensor.dims.clone();
    dims[0] = (end - start) as i64;
    Tensor::from_bytes(tensor.name.clone(), tensor.dtype, dims, bytes[start * row_bytes..end * row_bytes].to_vec())
        .map_err(|err| input_error(path, &tensor.name, err.to_string()))
}
