//! Synthetic inputs for benchmarks: deterministic pseudo-random tensors of the declared shapes.
//!
//! Latency rarely depends on the values, so `bench` needs data only when the user has some. Floats
//! are uniform in [0, 1); integers are uniform in 0..8, small enough to be valid indices for any
//! table of 8 rows or more (token ids, gather indices); bools are fair coin flips. The generator is
//! SplitMix64 seeded per input, so the same model gives the same feed on every run and machine.

use std::collections::BTreeMap;

use whittle_ir::{DataType, DimValue, Tensor, ValueInfo};

use crate::error::{EvalError, Result};

/// Sizes the user gives for inputs (`--shape name=1x3x224x224`) and for a symbolic batch axis.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputShapes {
    /// Whole shapes by input name; they must agree with the declared rank and fixed sizes.
    pub by_input: BTreeMap<String, Vec<i64>>,
    /// The size of a symbolic or unknown axis 0 (the batch); 1 when not given.
    pub batch: Option<i64>,
}

/// One feed for `inputs` (the model's feed inputs, in order) with shapes from `shapes` and the
/// declarations, and deterministic values.
pub fn synthetic_feed(inputs: &[ValueInfo], shapes: &InputShapes) -> Result<Vec<(String, Tensor)>> {
    if let Some(unknown) = shapes.by_input.keys().find(|name| !inputs.iter().any(|input| &input.name == *name)) {
        let names: Vec<&str> = inputs.iter().map(|input| input.name.as_str()).collect();
        return Err(EvalError::Options {
            reason: format!("--shape names '{unknown}', which is not an input of the model (inputs: {})", names.join(", ")),
        });
    }
    // Symbolic name -> size, so that inputs sharing a symbol get one size.
    let mut symbols: BTreeMap<String, i64> = BTreeMap::new();
    let mut feed = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let error = |reason: String| EvalError::Input { input: input.name.clone(), reason };
        let Some((dtype, declared)) = input.ty.as_ref().and_then(|ty| ty.as_tensor()) else {
            return Err(error("only tensor inputs can be generated; give data for this input".into()));
        };
        let dims = match (shapes.by_input.get(&input.name), declared) {
            (Some(given), Some(declared)) => {
                if given.len() != declared.rank() {
                    return Err(error(format!("--shape gives rank {} ({given:?}), the model declares {declared}", given.len())));
                }
                for (axis, (dim, &size)) in declared.0.iter().zip(given).enumerate() {
                    match &dim.value {
                        DimValue::Known(fixed) if *fixed != size => {
                            return Err(error(format!("--shape sets axis {axis} to {size}, the model fixes it at {fixed}")))
                        }
                        DimValue::Symbolic(symbol) => match symbols.get(symbol) {
                            Some(&seen) if seen != size => {
                                return Err(error(format!("--shape sets '{symbol}' to {size}, another input has {seen}")))
                            }
                            _ => {
                                symbols.insert(symbol.clone(), size);
                            }
                        },
                        _ => {}
                    }
                }
                given.clone()
            }
            (Some(given), None) => given.clone(),
            (None, None) => return Err(error("the model declares no shape: give one with --shape NAME=DIMS".into())),
            (None, Some(declared)) => {
                let mut dims = Vec::with_capacity(declared.rank());
                for (axis, dim) in declared.0.iter().enumerate() {
                    let size = match &dim.value {
                        DimValue::Known(size) => *size,
                        DimValue::Symbolic(symbol) if symbols.contains_key(symbol) => symbols[symbol],
                        _ if axis == 0 => {
                            let batch = shapes.batch.unwrap_or(1);
                            if let DimValue::Symbolic(symbol) = &dim.value {
                                symbols.insert(symbol.clone(), batch);
                            }
                            batch
                        }
                        _ => {
                            return Err(error(format!(
                                "axis {axis} is '{dim}', which has no size: give one with --shape {}={}",
                                input.name,
                                declared
                                    .0
                                    .iter()
                                    .map(|d| d.size().map_or("N".to_string(), |s| s.to_string()))
                                    .collect::<Vec<_>>()
                                    .join("x")
                            )))
                        }
                    };
                    dims.push(size);
                }
                dims
            }
        };
        if let Some(&negative) = dims.iter().find(|&&size| size < 0) {
            return Err(error(format!("size {negative} is not a size")));
        }
        let tensor = random_tensor(&input.name, dtype, dims, index as u64).map_err(error)?;
        feed.push((input.name.clone(), tensor));
    }
    Ok(feed)
}

fn random_tensor(name: &str, dtype: DataType, dims: Vec<i64>, seed: u64) -> Result<Tensor, String> {
    let count: usize = dims.iter().map(|&size| size as usize).product();
    let mut random = SplitMix64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED);
    let mut bytes = Vec::new();
    macro_rules! fill {
        ($make:expr) => {
            for _ in 0..count {
                let value = $make(&mut random);
                bytes.extend_from_slice(&value.to_le_bytes());
            }
        };
    }
    match dtype {
        DataType::F32 => fill!(|r: &mut SplitMix64| r.unit() as f32),
        DataType::F64 => fill!(|r: &mut SplitMix64| r.unit()),
        DataType::F16 => fill!(|r: &mut SplitMix64| half::f16::from_f64(r.unit())),
        DataType::BF16 => fill!(|r: &mut SplitMix64| half::bf16::from_f64(r.unit())),
        DataType::I64 => fill!(|r: &mut SplitMix64| r.small() as i64),
        DataType::I32 => fill!(|r: &mut SplitMix64| r.small() as i32),
        DataType::I16 => fill!(|r: &mut SplitMix64| r.small() as i16),
        DataType::I8 => fill!(|r: &mut SplitMix64| r.small() as i8),
        DataType::U64 => fill!(|r: &mut SplitMix64| r.small()),
        DataType::U32 => fill!(|r: &mut SplitMix64| r.small() as u32),
        DataType::U16 => fill!(|r: &mut SplitMix64| r.small() as u16),
        DataType::U8 => fill!(|r: &mut SplitMix64| r.small() as u8),
        DataType::Bool => fill!(|r: &mut SplitMix64| (r.next() & 1) as u8),
        other => return Err(format!("cannot generate {other} data; give data for this input")),
    }
    Tensor::from_bytes(name, dtype, dims, bytes).map_err(|err| err.to_string())
}

/// SplitMix64 (Steele, Lea and Flood 2014): tiny, fast, and good enough for benchmark inputs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..8.
    fn small(&mut self) -> u64 {
        self.next() >> 61
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{Dim, Shape, Type};

    use super::*;

    fn input(name: &str, dtype: DataType, dims: Vec<Dim>) -> ValueInfo {
        ValueInfo::new(name, Some(Type::tensor(dtype, Some(Shape(dims)))))
    }

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 0, from the reference C implementation
        // (https://prng.di.unimi.it/splitmix64.c).
        let mut random = SplitMix64(0);
        assert_eq!(random.next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(random.next(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn symbolic_batch_takes_the_batch_size_and_shared_symbols_agree() {
        let inputs = [
            input("ids", DataType::I64, vec![Dim::symbolic("batch"), Dim::known(16)]),
            input("mask", DataType::Bool, vec![Dim::symbolic("batch"), Dim::known(16)]),
        ];
        let feed = synthetic_feed(&inputs, &InputShapes { batch: Some(4), ..InputShapes::default() }).unwrap();
        assert_eq!(feed[0].1.dims, vec![4, 16]);
        assert_eq!(feed[1].1.dims, vec![4, 16]);
        let ids: Vec<i64> = feed[0].1.bytes().unwrap().chunks(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
        assert!(ids.iter().all(|&id| (0..8).contains(&id)));
        assert!(ids.iter().any(|&id| id != ids[0]), "values vary");
        // Deterministic: the same call gives the same bytes.
        let again = synthetic_feed(&inputs, &InputShapes { batch: Some(4), ..InputShapes::default() }).unwrap();
        assert_eq!(feed, again);
    }

    #[test]
    fn floats_are_in_the_unit_interval() {
        let inputs = [input("x", DataType::F32, vec![Dim::known(1000)])];
        let feed = synthetic_feed(&inputs, &InputShapes::default()).unwrap();
        let values = feed[0].1.to_f32_vec().unwrap();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        assert!((mean - 0.5).abs() < 0.05, "mean {mean}");
    }

    #[test]
    fn inner_symbolic_axes_need_a_shape_and_given_shapes_are_checked() {
        let inputs = [input("x", DataType::F32, vec![Dim::symbolic("batch"), Dim::symbolic("seq"), Dim::known(8)])];
        let err = synthetic_feed(&inputs, &InputShapes::default()).unwrap_err();
        assert_eq!(err.to_string(), "input 'x': axis 1 is 'seq', which has no size: give one with --shape x=NxNx8");
        let mut shapes = InputShapes::default();
        shapes.by_input.insert("x".into(), vec![2, 5, 8]);
        assert_eq!(synthetic_feed(&inputs, &shapes).unwrap()[0].1.dims, vec![2, 5, 8]);
        shapes.by_input.insert("x".into(), vec![2, 5, 9]);
        let err = synthetic_feed(&inputs, &shapes).unwrap_err();
        assert_eq!(err.to_string(), "input 'x': --shape sets axis 2 to 9, the model fixes it at 8");
        shapes.by_input.insert("y".into(), vec![1]);
        let err = synthetic_feed(&inputs, &shapes).unwrap_err();
        assert!(err.to_string().starts_with("--shape names 'y'"), "{err}");
    }
}
