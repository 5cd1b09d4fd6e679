//! Branch-free f32 erf, exp and tanh that the compiler vectorizes, and the elementwise maps built on
//! them: Erf, exact and tanh Gelu, the exported `x * 0.5 * (1 + erf(x / sqrt 2))`.
//!
//! burn-flex computes erf with a scalar libm-style routine: on `transformer_tiny` (batch 8) its two
//! Erf steps over 16k elements took 107 us, 6.5 ns an element, a sixth of the model's run. The
//! erf below (two polynomial branches, both computed, one selected) has no branch, so the loop runs
//! 4 lanes at once on SSE2; its largest error against f64 erf over a dense range is checked in the
//! tests (1.1 ulp measured, 6.3e-8 absolute). Eigen's rational `x * P(x^2) / Q(x^2)` was tried first
//! and measured 7 ulp (4.2e-7 near |x| 3.3). `exp` is Cephes's expf
//! (reduction to `r` in [-ln2/2, ln2/2], a degree-6 polynomial, 2^n built from the exponent bits),
//! relative error about 2e-7; softmax and tanh use it. A one-node Erf model on `[8, 16, 128]`
//! (`whittle bench`, upload and download included, same run) went from 153 us to 91 us (min),
//! a Gelu one from 161 us to 113 us.

/// erf(x) in f32; NaN stays NaN, +-inf give +-1.
///
/// Norbert Juffa's published faithfully rounded erff approximation: `x + x * P(x^2)` for |x| up to
/// 475/512, `1 - exp(Q(|x|))` with the sign of x above. Both branches are computed and one is
/// selected, so the loop has no branch; without FMA (the baseline x86-64 target) the largest error
/// measured against f64 erf over [-6, 6] in steps of 1e-4 was 1.1 ulp.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let t = x.abs();
    let s = x * x;
    let mut near = -5.967_617e-4_f32;
    near = near * s + 4.991_194_2e-3;
    near = near * s + -2.676_813_5e-2;
    near = near * s + 1.128_199_3e-1;
    near = near * s + -3.761_253_4e-1;
    near = near * s + 1.283_791_7e-1;
    let near = near * x + x;
    // Past 4 the exponent's argument is below -16 and the result is 1 in f32; clamping keeps inf
    // out of the polynomial (inf - inf would be NaN).
    let c = t.min(4.0);
    let mut r = (-1.728_534_7e-5_f32 * c + 3.831_971_3e-4) * (c * c) + (-3.883_964_4e-3 * c + 2.425_462_2e-2);
    r = r * c + -1.067_778_8e-1;
    r = r * c + -6.348_467e-1;
    r = r * c + -1.287_175_1e-1;
    r = r * c - c;
    let far = (1.0 - exp(r)).copysign(x);
    if t > 0.927_734_4 {
        far
    } else {
        near
    }
}

/// e^x in f32: 0 below -87.3 (and for -inf), inf from 88.73 on, NaN for NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that `n * LN2_HIGH` is exact for the n that occur.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding and removing 1.5 * 2^23 rounds to the nearest integer: `f32::round` is a libm call on
    // the baseline x86-64 target, which would stop the loop from vectorizing.
    const ROUNDER: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.3, 88.73);
    // n stays at most 127 so that 2^n is a normal f32; above 88.03 the remainder r grows to 0.7,
    // where the polynomial is still within 1e-6, and y * 2^127 overflows to inf past 88.72.
    let n = ((clamped * LOG2_E + ROUNDER) - ROUNDER).min(127.0);
    let r = clamped - n * LN2_HIGH - n * LN2_LOW;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from its exponent bits without a float-to-int conversion (a saturating `as` cast does
    // not vectorize on SSE2): n + 127 + 2^23 holds n + 127 in its low mantissa bits, which the
    // shift moves into the exponent field, pushing the rest out.
    let scale = f32::from_bits((n + (8_388_608.0 + 127.0)).to_bits() << 23);
    if x < -87.3 {
        0.0
    } else {
        y * scale
    }
}

/// tanh(x) in f32 as `1 - 2 / (e^(2x) + 1)`, exact at the limits (+-1 for large |x|).
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    // Below |x| 0.0625 the subtraction would cancel: the odd series to x^5 is within f32 rounding.
    let x2 = x * x;
    let series = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0)));
    let far = 1.0 - 2.0 / (exp(2.0 * x) + 1.0);
    if x.abs() < 0.0625 {
        series
    } else {
        far
    }
}

/// An elementwise float map the kernels compute in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Map {
    Erf,
    /// `x * Phi(x)` with the exact normal CDF `(1 + erf(x / sqrt 2)) / 2`.
    Gelu,
    /// `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))`.
    GeluTanh,
}

impl Map {
    /// Replaces every element of `values` by its image.
    pub(crate) fn apply(self, values: &mut [f32]) {
        match self {
            Map::Erf => map_interleaved(values, erf),
            Map::Gelu => map_interleaved(values, gelu),
            Map::GeluTanh => map_interleaved(values, gelu_tanh),
        }
    }
}

/// `values[i] = f(values[i])`, 16 at a time: the polynomials are long chains of dependent
/// operations, and a fixed block of 16 lets the compiler interleave four vectors' chains.
///
/// The loop is compiled for every instruction set pulp dispatches to (AVX-512, AVX2 + FMA, the
/// baseline) and the best one the CPU has runs: the release binary targets baseline x86-64 (SSE2,
/// 4 lanes), where erf measured 3.4 ns an element, 2.3 with AVX2 and 1.0 with AVX-512 (a loop over
/// 16k values). Without fast-math the compiler neither contracts to FMA nor reorders, so every
/// path computes the same IEEE operations and gives bit-identical results.
pub(crate) fn map_interleaved(values: &mut [f32], f: impl Fn(f32) -> f32 + Copy) {
    struct Blocks<'a, F>(&'a mut [f32], F);
    impl<F: Fn(f32) -> f32 + Copy> pulp::WithSimd for Blocks<'_, F> {
        type Output = ();
        // Inlined into pulp's per-instruction-set entry points, so the loop and `f` are compiled
        // with their target features (a closure passed to `Arch::dispatch` was not: no gain).
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _simd: S) {
            let Blocks(values, f) = self;
            let mut blocks = values.chunks_exact_mut(16);
            for block in &mut blocks {
                for value in block.iter_mut() {
                    *value = f(*value);
                }
            }
            blocks.into_remainder().iter_mut().for_each(|value| *value = f(*value));
        }
    }
    pulp::Arch::new().dispatch(Blocks(values, f));
}

/// Exact Gelu of one element.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// tanh Gelu of one element.
#[inline(always)]
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    // sqrt(2 / pi).
    const C: f32 = 0.797_884_6;
    0.5 * x * (1.0 + tanh(C * (x + 0.044_715 * x * x * x)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 by its Taylor series below 3 and its asymptotic continued fraction above, both
    /// converged far past f32's precision.
    fn erf64(x: f64) -> f64 {
        let a = x.abs();
        let value = if a < 3.0 {
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc(a) = exp(-a^2) / sqrt(pi) * 1 / (a + 1/2 / (a + 1 / (a + 3/2 / (a + ...)))).
            let mut fraction = a;
            for k in (1..60).rev() {
                fraction = a + f64::from(k) / 2.0 / fraction;
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / fraction
        };
        value.copysign(x)
    }

    /// The points of a dense grid over `[-range, range]`, every f32 step of `step`.
    fn grid(range: f32, step: f32) -> impl Iterator<Item = f32> {
        let count = (2.0 * range / step) as i32;
        (0..=count).map(move |i| -range + i as f32 * step)
    }

    #[test]
    fn erf_is_within_f32_rounding_of_f64_over_a_dense_range() {
        let mut worst = 0.0f64;
        for x in grid(6.0, 1e-4) {
            let error = (f64::from(erf(x)) - erf64(f64::from(x))).abs();
            worst = worst.max(error);
        }
        // f32's spacing just below 1 is 6e-8: the error stays within about one of those.
        assert!(worst < 1e-7, "max abs error {worst:e}");
        // In ulps of the result, for the small values as well.
        let mut worst_ulps = 0.0f64;
        for x in grid(3.9, 1e-4) {
            let expected = erf64(f64::from(x));
            let ulp = f64::from((expected.abs() as f32).next_up() - expected.abs() as f32);
            worst_ulps = worst_ulps.max((f64::from(erf(x)) - expected).abs() / ulp);
        }
        assert!(worst_ulps < 2.0, "max error {worst_ulps} ulp");
        // Relative accuracy holds near 0, where erf(x) ~ 2x / sqrt(pi).
        for x in [1e-30f32, 1e-10, 1e-5, -3e-3] {
            let expected = erf64(f64::from(x));
            assert!((f64::from(erf(x)) - expected).abs() <= 2e-7 * expected.abs(), "{x}");
        }
    }

    #[test]
    fn erf_limits_and_nan() {
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
        assert_eq!(erf(0.0), 0.0);
        assert!(erf(f32::NAN).is_nan());
    }

    #[test]
    fn exp_is_within_a_few_ulps_of_f64() {
        let mut worst = 0.0f64;
        for x in grid(87.0, 1e-3) {
            let expected = f64::from(x).exp();
            worst = worst.max((f64::from(exp(x)) - expected).abs() / expected);
        }
        assert!(worst < 4e-7, "max relative error {worst:e}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        // Near the top of the range, where n stops at 127 and the remainder grows.
        for top in [88.0f32, 88.5, 88.7] {
            assert!((f64::from(exp(top)) / f64::from(top).exp() - 1.0).abs() < 1e-6, "{top}");
        }
        assert_eq!(exp(88.75), f32::INFINITY);
    }

    #[test]
    fn tanh_and_gelu_match_f64() {
        let (mut tanh_worst, mut gelu_worst, mut gelu_tanh_worst) = (0.0f64, 0.0f64, 0.0f64);
        for x in grid(10.0, 1e-3) {
            let x64 = f64::from(x);
            tanh_worst = tanh_worst.max((f64::from(tanh(x)) - x64.tanh()).abs());
            let exact = 0.5 * x64 * (1.0 + erf64(x64 / std::f64::consts::SQRT_2));
            gelu_worst = gelu_worst.max((f64::from(gelu(x)) - exact).abs() / x64.abs().max(1.0));
            let approx = 0.5 * x64 * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x64 + 0.044715 * x64.powi(3))).tanh());
            gelu_tanh_worst = gelu_tanh_worst.max((f64::from(gelu_tanh(x)) - approx).abs() / x64.abs().max(1.0));
        }
        assert!(tanh_worst < 3e-7, "tanh {tanh_worst:e}");
        assert!(gelu_worst < 5e-7, "gelu {gelu_worst:e}");
        assert!(gelu_tanh_worst < 5e-7, "gelu tanh {gelu_tanh_worst:e}");
        assert!(tanh(1e-3) > 0.0 && (f64::from(tanh(1e-3)) - 1e-3f64.tanh()).abs() < 1e-10);
        assert!(gelu(f32::NAN).is_nan() && gelu_tanh(f32::NAN).is_nan());
        assert_eq!((gelu(f32::INFINITY), gelu_tanh(f32::INFINITY)), (f32::INFINITY, f32::INFINITY));
    }
}
