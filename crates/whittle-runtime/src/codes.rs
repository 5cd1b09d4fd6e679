//! Element types burn has no type for (float8, float4, e8m0, 4- and 2-bit integers): how a value
//! holds them and the exact conversions to and from them.
//!
//! A value of one of these "code types" holds one code per element in a burn tensor of u8 (float
//! codes, unsigned integers) or i8 (signed integers, sign-extended), with the logical dtype beside
//! it (`value.rs`). Data-movement ops move codes without looking at them; arithmetic ops cannot
//! reach them, since `Value::float`/`int` refuse code types. Packed 4-bit and 2-bit storage (low bits
//! first, as `whittle_ir::Tensor` and ONNX keep it) is unpacked on upload and packed again on
//! download, so a round trip is byte-exact.
//!
//! The float conversions are written out here rather than taken from the `float8` crate (0.7),
//! which has E4M3FN and E5M2 only; one parametrised format covers the four float8 variants and
//! float4 E2M1, so FNUZ, `saturate = 0` and the NaN rules share one rounding path. Semantics follow
//! the ONNX spec of Cast and its reference implementation (ml_dtypes 0.5):
//! - rounding to nearest, ties to even, on the magnitude; what rounds above the largest finite
//!   value is that value when saturating, else infinity (E5M2) or NaN (the others);
//! - infinities saturate to the largest finite value, or without saturation become infinity
//!   (E5M2) or NaN; NaN stays NaN with its sign where the format has a signed NaN;
//! - FNUZ formats have no negative zero (`-0` and negative underflow give `+0`) and one NaN, 0x80;
//! - float4 has neither NaN nor infinity and always saturates; the reference maps NaN to a zero of
//!   the opposite sign (`+NaN` to 0x8), which is what the backend tests hold, so that is kept;
//! - e8m0 (a bare exponent, 2^(code - 127), 0xff NaN) follows the reference's bit rules on the f32
//!   value for `round_mode` up, down and nearest. Where the spec's table of special values
//!   disagrees with the reference (Inf, and 0 without saturation), the reference is followed.

use burn_tensor::DType;
use whittle_ir::DataType;

/// burn's dtype holding one code per element of a code type, or `None` for other dtypes.
pub fn code_storage(dtype: DataType) -> Option<DType> {
    match dtype {
        DataType::F8E4M3FN
        | DataType::F8E4M3FNUZ
        | DataType::F8E5M2
        | DataType::F8E5M2FNUZ
        | DataType::F8E8M0
        | DataType::F4E2M1
        | DataType::U4
        | DataType::U2 => Some(DType::U8),
        DataType::I4 | DataType::I2 => Some(DType::I8),
        _ => None,
    }
}

/// Whether `dtype` is a float code type (its codes are not numbers).
pub fn is_float_code(dtype: DataType) -> bool {
    code_storage(dtype).is_some() && dtype.is_float()
}

/// The range of a 4-bit or 2-bit integer type.
pub fn narrow_integer_range(dtype: DataType) -> Option<(i64, i64)> {
    match dtype {
        DataType::U4 => Some((0, 15)),
        DataType::I4 => Some((-8, 7)),
        DataType::U2 => Some((0, 3)),
        DataType::I2 => Some((-2, 1)),
        _ => None,
    }
}

/// The storage bytes (one per element) of `count` elements of a code type from their ONNX bytes:
/// 8-bit codes as they are; 4-bit and 2-bit ones unpacked low bits first, signed ones sign-extended.
pub fn unpack(dtype: DataType, bytes: &[u8], count: usize) -> Vec<u8> {
    let bits = dtype.bit_width().unwrap_or(8);
    if bits == 8 {
        return bytes[..count].to_vec();
    }
    let per_byte = 8 / bits;
    let mask = (1u8 << bits) - 1;
    let signed = matches!(dtype, DataType::I4 | DataType::I2);
    (0..count)
        .map(|index| {
            let code = (bytes[index / per_byte] >> ((index % per_byte) * bits)) & mask;
            if signed {
                // Shift the code's sign bit to the top and back to sign-extend it.
                (((code << (8 - bits)) as i8) >> (8 - bits)) as u8
            } else {
                code
            }
        })
        .collect()
}

/// The ONNX bytes of a code type from its storage bytes (one per element): the inverse of
/// [`unpack`], with unused high bits of the last byte zero.
pub fn pack(dtype: DataType, storage: &[u8]) -> Vec<u8> {
    let bits = dtype.bit_width().unwrap_or(8);
    if bits == 8 {
        return storage.to_vec();
    }
    let per_byte = 8 / bits;
    let mask = (1u8 << bits) - 1;
    let mut packed = vec![0u8; storage.len().div_ceil(per_byte)];
    for (index, &code) in storage.iter().enumerate() {
        packed[index / per_byte] |= (code & mask) << ((index % per_byte) * bits);
    }
    packed
}

/// The storage byte of a 4-bit or 2-bit integer type for an integer: its low bits (wrapping, as
/// the spec's integer-to-integer rule and the reference's float-to-int4 conversion do),
/// sign-extended for the signed types.
pub fn wrap_narrow_integer(dtype: DataType, value: i64) -> u8 {
    let bits = dtype.bit_width().unwrap_or(8) as u32;
    let low = (value as u64 & ((1u64 << bits) - 1)) as u8;
    match dtype {
        DataType::I4 | DataType::I2 => (((low << (8 - bits)) as i8) >> (8 - bits)) as u8,
        _ => low,
    }
}

/// How a small float format spends its top exponent and its special values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Specials {
    /// IEEE-like (E5M2): the top exponent holds infinities (mantissa 0) and NaNs.
    Ieee,
    /// Finite with one NaN per sign, all exponent and mantissa bits set (E4M3FN).
    OneNan,
    /// Finite, unsigned zero, one NaN 0x80 in the negative-zero code (E4M3FNUZ, E5M2FNUZ).
    Fnuz,
    /// Finite, no NaN (float4 E2M1).
    NoNan,
}

/// A sign-exponent-mantissa format of at most 8 bits.
#[derive(Debug, Clone, Copy)]
struct SmallFloat {
    exponent_bits: u32,
    mantissa_bits: u32,
    bias: i32,
    specials: Specials,
}

impl SmallFloat {
    fn of(dtype: DataType) -> Option<SmallFloat> {
        let (exponent_bits, mantissa_bits, bias, specials) = match dtype {
            DataType::F8E4M3FN => (4, 3, 7, Specials::OneNan),
            DataType::F8E4M3FNUZ => (4, 3, 8, Specials::Fnuz),
            DataType::F8E5M2 => (5, 2, 15, Specials::Ieee),
            DataType::F8E5M2FNUZ => (5, 2, 16, Specials::Fnuz),
            DataType::F4E2M1 => (2, 1, 1, Specials::NoNan),
            _ => return None,
        };
        Some(SmallFloat { exponent_bits, mantissa_bits, bias, specials })
    }

    fn sign_bit(self) -> u8 {
        1 << (self.exponent_bits + self.mantissa_bits)
    }

    fn exponent_mask(self) -> u8 {
        (1 << self.exponent_bits) - 1
    }

    fn mantissa_mask(self) -> u8 {
        (1 << self.mantissa_bits) - 1
    }

    /// The code of the largest finite value, without sign.
    fn max_code(self) -> u8 {
        let all = self.sign_bit() - 1;
        match self.specials {
            // The top exponent is for specials.
            Specials::Ieee => all - self.mantissa_mask() - 1,
            Specials::OneNan => all - 1,
            Specials::Fnuz | Specials::NoNan => all,
        }
    }

    fn nan_code(self, negative: bool) -> u8 {
        let sign = if negative { self.sign_bit() } else { 0 };
        match self.specials {
            // The quiet NaN: top mantissa bit set.
            Specials::Ieee => sign | (self.exponent_mask() << self.mantissa_bits) | (1 << (self.mantissa_bits - 1)),
            Specials::OneNan => sign | (self.sign_bit() - 1),
            Specials::Fnuz => 0x80,
            // The reference's choice for a format without NaN: a zero of the opposite sign.
            Specials::NoNan => {
                if negative {
                    0
                } else {
                    self.sign_bit()
                }
            }
        }
    }

    fn decode(self, code: u8) -> f64 {
        let negative = code & self.sign_bit() != 0;
        let exponent = (code >> self.mantissa_bits) & self.exponent_mask();
        let mantissa = code & self.mantissa_mask();
        let special = match self.specials {
            Specials::Ieee if exponent == self.exponent_mask() => Some(if mantissa == 0 { f64::INFINITY } else { f64::NAN }),
            Specials::OneNan if exponent == self.exponent_mask() && mantissa == self.mantissa_mask() => Some(f64::NAN),
            Specials::Fnuz if code == 0x80 => Some(f64::NAN),
            _ => None,
        };
        let magnitude = special.unwrap_or_else(|| {
            let m = f64::from(mantissa);
            let scale = |power: i32| 2f64.powi(power - self.mantissa_bits as i32);
            if exponent == 0 {
                m * scale(1 - self.bias)
            } else {
                (f64::from(1u32 << self.mantissa_bits) + m) * scale(i32::from(exponent) - self.bias)
            }
        });
        if negative {
            -magnitude
        } else {
            magnitude
        }
    }

    /// What a value too large for the format (after rounding) or infinite becomes.
    fn overflow(self, negative: bool, saturate: bool, sign: u8) -> u8 {
        if saturate || self.specials == Specials::NoNan {
            return sign | self.max_code();
        }
        match self.specials {
            Specials::Ieee => sign | (self.exponent_mask() << self.mantissa_bits),
            _ => self.nan_code(negative),
        }
    }

    fn encode(self, x: f64, saturate: bool) -> u8 {
        let negative = x.is_sign_negative();
        if x.is_nan() {
            return self.nan_code(negative);
        }
        let sign = if negative { self.sign_bit() } else { 0 };
        let magnitude = x.abs();
        if magnitude.is_infinite() {
            return self.overflow(negative, saturate, sign);
        }
        let mantissa_bits = self.mantissa_bits as i32;
        let min_exponent = 1 - self.bias;
        // The binary exponent of the magnitude, read from the f64 bits so that it is exact; f64
        // subnormals are far below every format's smallest value and round to zero anyway.
        let biased = ((magnitude.to_bits() >> 52) & 0x7ff) as i32;
        let exponent = (biased - 1023).max(min_exponent);
        // The spacing of the format's values at that exponent; the quotient is exact (a power-of-two
        // scaling) and rounding it to an integer rounds to the nearest value, ties to even.
        let quantum = 2f64.powi(exponent - mantissa_bits);
        let steps = (magnitude / quantum).round_ties_even();
        if steps == 0.0 {
            // FNUZ's negative-zero code is its NaN: every zero is +0.
            return if self.specials == Specials::Fnuz { 0 } else { sign };
        }
        let implicit = f64::from(1u32 << mantissa_bits);
        let (exponent, steps) = if steps >= 2.0 * implicit { (exponent + 1, implicit) } else { (exponent, steps) };
        let field = if steps < implicit { 0 } else { exponent + self.bias };
        let mantissa = if steps < implicit { steps } else { steps - implicit } as u8;
        if field > i32::from(self.exponent_mask()) {
            return self.overflow(negative, saturate, sign);
        }
        let code = ((field as u8) << self.mantissa_bits) | mantissa;
        if code > self.max_code() {
            return self.overflow(negative, saturate, sign);
        }
        sign | code
    }
}

/// How Cast to e8m0 rounds a value that is not a power of two (the `round_mode` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundMode {
    Up,
    Down,
    Nearest,
}

/// The e8m0 code of `x`, taken as f32 as the reference does (the sign is ignored).
fn encode_e8m0(x: f32, saturate: bool, round_mode: RoundMode) -> u8 {
    let bits = x.to_bits();
    let exponent = ((bits >> 23) & 0xff) as u16;
    if exponent == 0xff {
        return 0xff;
    }
    let round_up = match round_mode {
        RoundMode::Down => false,
        RoundMode::Up => bits & 0x7f_ffff != 0,
        RoundMode::Nearest => {
            let guard = bits & 0x40_0000 != 0;
            let round = bits & 0x20_0000 != 0;
            let sticky = bits & 0x1f_ffff != 0;
            guard && (round || sticky || exponent > 0)
        }
    };
    // Saturation keeps the largest exponent from stepping into the NaN code.
    let step = u16::from(round_up && !(saturate && exponent == 0xfe));
    (exponent + step) as u8
}

fn decode_e8m0(code: u8) -> f64 {
    if code == 0xff {
        f64::NAN
    } else {
        2f64.powi(i32::from(code) - 127)
    }
}

/// The value of float code `code` of `dtype` (float8, float4 or e8m0), exact in f64 and in f32.
pub fn decode_float(dtype: DataType, code: u8) -> f64 {
    match SmallFloat::of(dtype) {
        Some(format) => format.decode(code),
        None => decode_e8m0(code),
    }
}

/// The code of float code type `dtype` nearest to `x`, by the rules in this file's documentation.
pub fn encode_float(dtype: DataType, x: f64, saturate: bool, round_mode: RoundMode) -> u8 {
    match SmallFloat::of(dtype) {
        Some(format) => format.encode(x, saturate),
        None => encode_e8m0(x as f32, saturate, round_mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOAT8: [DataType; 4] = [DataType::F8E4M3FN, DataType::F8E4M3FNUZ, DataType::F8E5M2, DataType::F8E5M2FNUZ];

    /// The value of a code from the format's definition, written independently of `decode`:
    /// `(-1)^s * 2^(e - bias) * 1.m`, or `2^(1 - bias) * 0.m` for e = 0.
    fn definition(code: u32, exponent_bits: u32, mantissa_bits: u32, bias: i32) -> f64 {
        let sign = if code >> (exponent_bits + mantissa_bits) & 1 == 1 { -1.0 } else { 1.0 };
        let e = (code >> mantissa_bits) & ((1 << exponent_bits) - 1);
        let m = f64::from(code & ((1 << mantissa_bits) - 1)) / f64::from(1u32 << mantissa_bits);
        if e == 0 {
            sign * 2f64.powi(1 - bias) * m
        } else {
            sign * 2f64.powi(e as i32 - bias) * (1.0 + m)
        }
    }

    fn layout(dtype: DataType) -> (u32, u32, i32) {
        match dtype {
            DataType::F8E4M3FN => (4, 3, 7),
            DataType::F8E4M3FNUZ => (4, 3, 8),
            DataType::F8E5M2 => (5, 2, 15),
            DataType::F8E5M2FNUZ => (5, 2, 16),
            _ => (2, 1, 1),
        }
    }

    fn is_nan_code(dtype: DataType, code: u8) -> bool {
        match dtype {
            DataType::F8E4M3FN => code & 0x7f == 0x7f,
            DataType::F8E5M2 => code & 0x7c == 0x7c && code & 0x03 != 0,
            DataType::F8E4M3FNUZ | DataType::F8E5M2FNUZ => code == 0x80,
            _ => false,
        }
    }

    #[test]
    fn every_float8_and_float4_code_decodes_by_definition_and_round_trips() {
        for dtype in FLOAT8.into_iter().chain([DataType::F4E2M1]) {
            let (e, m, bias) = layout(dtype);
            for code in 0..(1u32 << (1 + e + m)) {
                let code = code as u8;
                let value = decode_float(dtype, code);
                if is_nan_code(dtype, code) {
                    assert!(value.is_nan(), "{dtype} {code:#x}");
                    assert!(is_nan_code(dtype, encode_float(dtype, value, true, RoundMode::Up)), "{dtype} {code:#x}");
                    continue;
                }
                if dtype == DataType::F8E5M2 && code & 0x7f == 0x7c {
                    assert_eq!(value, if code == 0x7c { f64::INFINITY } else { f64::NEG_INFINITY });
                    assert_eq!(encode_float(dtype, value, false, RoundMode::Up), code);
                    continue;
                }
                assert_eq!(value, definition(u32::from(code), e, m, bias), "{dtype} {code:#x}");
                // Every finite code encodes back to itself, with or without saturation.
                for saturate in [true, false] {
                    assert_eq!(encode_float(dtype, value, saturate, RoundMode::Up), code, "{dtype} {code:#x}");
                }
                assert_eq!(decode_float(dtype, code) as f32 as f64, value, "{dtype} {code:#x} is exact in f32");
            }
        }
    }

    /// The nearest finite code by exhaustive search over the magnitudes, ties to the even code
    /// (the one with an even last mantissa bit), then the sign: an independent statement of
    /// round-to-nearest-even.
    fn nearest_by_search(dtype: DataType, x: f64) -> u8 {
        let (e, m, _) = layout(dtype);
        let mut best: Option<(f64, u8)> = None;
        for code in 0..(1u32 << (e + m)) {
            let code = code as u8;
            let value = decode_float(dtype, code);
            if !value.is_finite() {
                continue;
            }
            let distance = (value - x.abs()).abs();
            best = match best {
                Some((d, c)) if d < distance || (d == distance && c & 1 == 0) => Some((d, c)),
                _ => Some((distance, code)),
            };
        }
        let code = best.unwrap().1;
        let fnuz = matches!(dtype, DataType::F8E4M3FNUZ | DataType::F8E5M2FNUZ);
        if x.is_sign_negative() && !(fnuz && code == 0) {
            code | 1 << (e + m)
        } else {
            code
        }
    }

    #[test]
    fn encoding_rounds_to_the_nearest_even_code_like_an_exhaustive_search() {
        for dtype in FLOAT8.into_iter().chain([DataType::F4E2M1]) {
            let (e, m, _) = layout(dtype);
            let max =
                (0..(1u32 << (e + m))).map(|code| decode_float(dtype, code as u8)).filter(|v| v.is_finite()).fold(0.0, f64::max);
            // Every midpoint between neighbouring codes, a point just either side of it, and a
            // spread of values from far below the smallest subnormal up to the largest value.
            let mut values: Vec<f64> = (0..(1u32 << (e + m)))
                .map(|code| decode_float(dtype, code as u8))
                .filter(|v| v.is_finite() && *v <= max)
                .collect();
            values.sort_by(f64::total_cmp);
            let mut probes = Vec::new();
            for pair in values.windows(2) {
                let middle = (pair[0] + pair[1]) / 2.0;
                probes.extend([middle, middle * (1.0 + 1e-9), middle * (1.0 - 1e-9)]);
            }
            probes.extend((0..2000).map(|i| max * (i as f64 / 2000.0).powi(3)));
            for x in probes.into_iter().flat_map(|x| [x, -x]) {
                let expected = nearest_by_search(dtype, x);
                assert_eq!(encode_float(dtype, x, true, RoundMode::Up), expected, "{dtype} {x}");
            }
        }
    }

    #[test]
    fn overflow_infinity_and_nan_follow_the_spec_tables() {
        // (dtype, largest finite value, code of +max, code for +overflow without saturation).
        let cases = [
            (DataType::F8E4M3FN, 448.0, 0x7e, 0x7f),
            (DataType::F8E4M3FNUZ, 240.0, 0x7f, 0x80),
            (DataType::F8E5M2, 57344.0, 0x7b, 0x7c),
            (DataType::F8E5M2FNUZ, 57344.0, 0x7f, 0x80),
        ];
        for (dtype, max, max_code, no_saturate) in cases {
            assert_eq!(decode_float(dtype, max_code), max);
            for x in [f64::INFINITY, 1e6, max * 1.2] {
                assert_eq!(encode_float(dtype, x, true, RoundMode::Up), max_code, "{dtype} {x}");
                assert_eq!(encode_float(dtype, x, false, RoundMode::Up), no_saturate, "{dtype} {x}");
            }
            let negative = if dtype == DataType::F8E4M3FNUZ || dtype == DataType::F8E5M2FNUZ { 0x80 } else { 0x80 | no_saturate };
            assert_eq!(encode_float(dtype, f64::NEG_INFINITY, true, RoundMode::Up), 0x80 | max_code);
            assert_eq!(encode_float(dtype, f64::NEG_INFINITY, false, RoundMode::Up), negative);
            assert!(decode_float(dtype, encode_float(dtype, f64::NAN, true, RoundMode::Up)).is_nan());
        }
        // A value that rounds down to the largest one is not an overflow: 464 lies halfway between
        // E4M3FN's 448 (even mantissa 110) and 480 (past the end), so it rounds to 448.
        assert_eq!(encode_float(DataType::F8E4M3FN, 464.0, false, RoundMode::Up), 0x7e);
        assert_eq!(encode_float(DataType::F8E4M3FN, 470.0, false, RoundMode::Up), 0x7f);
        // FNUZ has no negative zero; the others keep the sign of an underflow.
        assert_eq!(encode_float(DataType::F8E4M3FNUZ, -1e-9, true, RoundMode::Up), 0);
        assert_eq!(encode_float(DataType::F8E4M3FN, -1e-9, true, RoundMode::Up), 0x80);
        // E4M3FN and E5M2 NaN keep their sign (0x7f / 0xff, 0x7e / 0xfe).
        assert_eq!(encode_float(DataType::F8E4M3FN, -f64::NAN, true, RoundMode::Up), 0xff);
        assert_eq!(encode_float(DataType::F8E5M2, f64::NAN, true, RoundMode::Up), 0x7e);
        // float4 saturates always; NaN becomes the zero of the opposite sign.
        assert_eq!(encode_float(DataType::F4E2M1, 1e6, false, RoundMode::Up), 0x7);
        assert_eq!(encode_float(DataType::F4E2M1, f64::NEG_INFINITY, false, RoundMode::Up), 0xf);
        assert_eq!(encode_float(DataType::F4E2M1, f64::NAN, true, RoundMode::Up), 0x8);
    }

    #[test]
    fn e8m0_rounds_by_mode_and_saturates_below_nan() {
        let e8m0 = |x: f32, saturate, mode| encode_float(DataType::F8E8M0, f64::from(x), saturate, mode);
        // 1.1 = 2^0 * 1.1: up gives 2^1 (code 128), down 2^0 (127), nearest 2^0 (guard bit 0).
        assert_eq!(e8m0(1.1, true, RoundMode::Up), 128);
        assert_eq!(e8m0(1.1, true, RoundMode::Down), 127);
        assert_eq!(e8m0(1.1, true, RoundMode::Nearest), 127);
        // 1.75 has its guard bit set: nearest rounds up.
        assert_eq!(e8m0(1.75, true, RoundMode::Nearest), 128);
        assert_eq!(e8m0(0.25, true, RoundMode::Up), 125);
        assert_eq!(e8m0(f32::MAX, true, RoundMode::Up), 254);
        assert_eq!(e8m0(f32::MAX, false, RoundMode::Up), 255);
        assert_eq!(e8m0(f32::NAN, true, RoundMode::Up), 255);
        assert_eq!(decode_float(DataType::F8E8M0, 127), 1.0);
        assert_eq!(decode_float(DataType::F8E8M0, 0), 2f64.powi(-127));
        assert!(decode_float(DataType::F8E8M0, 255).is_nan());
    }

    #[test]
    fn sub_byte_storage_packs_low_bits_first_and_sign_extends() {
        // i4 [1, -2, 7] packs to 0xe1, 0x07; unpacked storage is the sign-extended bytes.
        assert_eq!(pack(DataType::I4, &[1, (-2i8) as u8, 7]), vec![0xe1, 0x07]);
        assert_eq!(unpack(DataType::I4, &[0xe1, 0x07], 3), vec![1, 0xfe, 7]);
        assert_eq!(unpack(DataType::U4, &[0xe1], 2), vec![1, 14]);
        // u2 [3, 0, 1, 2, 1] packs to 0b10_01_00_11, 0b01.
        assert_eq!(pack(DataType::U2, &[3, 0, 1, 2, 1]), vec![0b1001_0011, 0b01]);
        assert_eq!(unpack(DataType::I2, &[0b1001_0011], 4), vec![0xff, 0, 1, 0xfe]);
        for dtype in [DataType::I4, DataType::U4, DataType::I2, DataType::U2] {
            let bytes: Vec<u8> = (0..=255).collect();
            let count = bytes.len() * 8 / dtype.bit_width().unwrap();
            assert_eq!(pack(dtype, &unpack(dtype, &bytes, count)), bytes, "{dtype}");
        }
    }

    #[test]
    fn narrow_integers_wrap() {
        assert_eq!(wrap_narrow_integer(DataType::I4, 300) as i8, -4);
        assert_eq!(wrap_narrow_integer(DataType::I4, -9) as i8, 7);
        assert_eq!(wrap_narrow_integer(DataType::U4, -1), 15);
        assert_eq!(wrap_narrow_integer(DataType::I2, 2) as i8, -2);
        assert_eq!(wrap_narrow_integer(DataType::U2, 7), 3);
    }
}
