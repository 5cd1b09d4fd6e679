//! How far a pass may move a model's outputs, and the check that differential tests and `fuse` run.

use serde::Serialize;
use whittle_ir::Tensor;

/// The deviation a pass declares. Rewrites that compute the same math in another order (a Gemm
/// for MatMul + Add, a fused LayerNormalization) round differently in the last bits, so even
/// "exact" rewrites are checked with a small relative tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Tolerance {
    /// Same values up to float reassociation: `rtol` 1e-5, `atol` 1e-6.
    Exact,
    /// `|candidate - reference| <= atol + rtol * |reference|` element-wise.
    Close { rtol: f64, atol: f64 },
}

impl Tolerance {
    /// Folding BatchNormalization into weights rounds the scaled weights once: 1e-4 relative.
    pub const BATCH_NORM_FOLD: Tolerance = Tolerance::Close { rtol: 1e-4, atol: 1e-5 };

    /// `(rtol, atol)` of this tolerance.
    pub fn bounds(self) -> (f64, f64) {
        match self {
            Tolerance::Exact => (1e-5, 1e-6),
            Tolerance::Close { rtol, atol } => (rtol, atol),
        }
    }

    /// The looser of two tolerances, bound by bound: what a sequence of passes may move outputs by.
    /// Deviations compound across passes, but each is orders of magnitude below the next one's
    /// bound, so the larger bound is what a chain is checked against.
    pub fn max(self, other: Tolerance) -> Tolerance {
        let ((rtol_a, atol_a), (rtol_b, atol_b)) = (self.bounds(), other.bounds());
        if self == other {
            self
        } else {
            Tolerance::Close { rtol: rtol_a.max(rtol_b), atol: atol_a.max(atol_b) }
        }
    }

    /// Checks one output of the transformed model against the original's.
    pub fn check(self, output: &str, reference: &Tensor, candidate: &Tensor) -> Result<(), whittle_metrics::MetricsError> {
        let (rtol, atol) = self.bounds();
        whittle_metrics::assert_close(output, reference, candidate, rtol, atol)
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rtol, atol) = self.bounds();
        write!(f, "rtol {rtol:e}, atol {atol:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_looser_bound_wins_per_bound() {
        let loose = Tolerance::Exact.max(Tolerance::BATCH_NORM_FOLD);
        assert_eq!(loose.bounds(), (1e-4, 1e-5));
        assert_eq!(Tolerance::Exact.max(Tolerance::Exact), Tolerance::Exact);
    }

    #[test]
    fn check_uses_relative_and_absolute_bounds() {
        let reference = Tensor::from_f32("y", vec![2], &[1000.0, 0.0]).unwrap();
        let inside = Tensor::from_f32("y", vec![2], &[1000.009, 0.0000009]).unwrap();
        let outside = Tensor::from_f32("y", vec![2], &[1000.02, 0.0]).unwrap();
        assert!(Tolerance::Exact.check("y", &reference, &inside).is_ok());
        let err = Tolerance::Exact.check("y", &reference, &outside).unwrap_err();
        assert!(err.to_string().starts_with("output 'y': element 0"), "{err}");
    }
}
