//! The burn backend a session runs on, chosen at run time.
//!
//! burn 0.22 selects a backend through its `Device` value; each backend is compiled in by a cargo
//! feature of burn-tensor. whittle mirrors that: one variant per backend this build can offer, each
//! behind a feature of this crate (`flex`, the default; `ndarray`; `wgpu` is meant to join them the
//! same way), so that a build pays only for the backends it names.

use burn_tensor::Device;

/// A burn backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// burn-flex, burn's pure-Rust CPU backend (SIMD and rayon threads).
    #[cfg(feature = "flex")]
    #[default]
    Flex,
    /// burn-ndarray, deprecated upstream; for comparisons (feature `ndarray`).
    #[cfg(feature = "ndarray")]
    Ndarray,
}

impl Backend {
    /// The burn device for this backend.
    pub fn device(self) -> Device {
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => Device::flex(),
            // whittle offers it on purpose, for comparisons; flex stays the default.
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Backend::Ndarray => Device::ndarray(),
        }
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => "flex",
            #[cfg(feature = "ndarray")]
            Backend::Ndarray => "ndarray",
        }
    }

    /// Every backend this build offers, the default first.
    pub fn available() -> &'static [Backend] {
        &[
            #[cfg(feature = "flex")]
            Backend::Flex,
            #[cfg(feature = "ndarray")]
            Backend::Ndarray,
        ]
    }

    /// The backend called `name` (its [`Backend::name`], or `cpu` for the default CPU backend);
    /// `None` when this build has no such backend.
    pub fn from_name(name: &str) -> Option<Backend> {
        if name == "cpu" {
            return Some(Backend::default());
        }
        Backend::available().iter().copied().find(|backend| backend.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn names_round_trip_and_cpu_is_the_default() {
        for &backend in Backend::available() {
            assert_eq!(Backend::from_name(backend.name()), Some(backend));
        }
        assert_eq!(Backend::from_name("cpu"), Some(Backend::default()));
        assert_eq!(Backend::from_name("tpu"), None);
    }
}

/// How a session runs.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RuntimeOptions {
    pub backend: Backend,
}

impl RuntimeOptions {
    pub fn new(backend: Backend) -> RuntimeOptions {
        RuntimeOptions { backend }
    }
}

#[cfg(not(feature = "flex"))]
compile_error!("whittle-runtime needs at least one backend feature; `flex` is the CPU one");
