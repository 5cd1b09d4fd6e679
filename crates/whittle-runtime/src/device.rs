//! The burn backend a session runs on, chosen at run time.
//!
//! burn 0.22 selects a backend through its `Device` value; each backend is compiled in by a cargo
//! feature of burn-tensor. whittle mirrors that: one variant per backend this build can offer, each
//! behind a feature of this crate (`flex`, the default; `ndarray`; `wgpu`, burn's cubecl backend on
//! the machine's GPU through wgpu), so that a build pays only for the backends it names. The ops
//! are written once against burn's tensor API and run on all of them.
//!
//! A CPU device always exists; a wgpu one needs an adapter (a GPU, or a software Vulkan driver such
//! as Mesa's lavapipe), so [`Backend::device`] can fail, and does so with an error rather than the
//! panic burn would raise at the first tensor op.

use burn_tensor::Device;

use crate::error::RuntimeError;

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
    /// burn's cubecl backend on wgpu's default adapter, WGSL shaders (feature `wgpu`).
    #[cfg(feature = "wgpu")]
    Wgpu,
}

/// Every backend name whittle knows, with the cargo feature of this crate that builds it in.
const FEATURES: [(&str, &str); 3] = [("flex", "flex"), ("ndarray", "ndarray"), ("wgpu", "wgpu")];

impl Backend {
    /// The burn device for this backend; fails when it has no hardware here (a wgpu build on a
    /// machine without a GPU or Vulkan driver).
    pub fn device(self) -> Result<Device, RuntimeError> {
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => Ok(Device::flex()),
            // whittle offers it on purpose, for comparisons; flex stays the default.
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Backend::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => wgpu_device(),
        }
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "flex")]
            Backend::Flex => "flex",
            #[cfg(feature = "ndarray")]
            Backend::Ndarray => "ndarray",
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => "wgpu",
        }
    }

    /// Every backend this build offers, the default first.
    pub fn available() -> &'static [Backend] {
        &[
            #[cfg(feature = "flex")]
            Backend::Flex,
            #[cfg(feature = "ndarray")]
            Backend::Ndarray,
            #[cfg(feature = "wgpu")]
            Backend::Wgpu,
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

    /// The cargo feature that builds in the backend called `name`, for the error of a build that
    /// lacks it (`--device wgpu` in a CPU-only build); `None` for a name whittle does not know.
    pub fn feature_for(name: &str) -> Option<&'static str> {
        FEATURES.iter().find(|(backend, _)| *backend == name).map(|&(_, feature)| feature)
    }
}

/// The outcome of initializing the wgpu device, once per process.
#[cfg(feature = "wgpu")]
static WGPU: std::sync::OnceLock<Result<Device, String>> = std::sync::OnceLock::new();

/// The wgpu device, initialized on first use.
///
/// `Device::wgpu` is lazy: without an adapter, burn panics at the first tensor op. Initializing
/// through `wgpu_options().init()` returns the failure instead. burn registers one runtime per
/// adapter and refuses a second `init`, so the outcome is kept for the process's later sessions.
#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device, RuntimeError> {
    WGPU.get_or_init(|| Device::wgpu_options().init().map_err(|err| err.to_string()))
        .clone()
        .map_err(|reason| RuntimeError::DeviceUnavailable { device: "wgpu".into(), reason })
}

/// Whether `device` is whittle's wgpu device, with or without autodiff (without initializing it: a
/// value on it exists only once it is).
fn is_wgpu(device: &Device) -> bool {
    #[cfg(feature = "wgpu")]
    {
        let inner = device.clone().without_autodiff();
        if WGPU.get().is_some_and(|wgpu| wgpu.as_ref().is_ok_and(|wgpu| *wgpu == inner)) {
            return true;
        }
    }
    let _ = device;
    false
}

/// The device's name for messages: whittle's name for it, or burn's description.
pub(crate) fn device_name(device: &Device) -> String {
    let suffix = if device.is_autodiff() { " with autodiff" } else { "" };
    if is_wgpu(device) {
        return format!("wgpu{suffix}");
    }
    if device.clone().without_autodiff() == Device::flex() {
        return format!("flex{suffix}");
    }
    format!("{device:?}")
}

/// Whether `device` computes in f64 correctly.
///
/// WGSL's exp, log, sin, cos, tanh and pow are defined on f16 and f32 only. With wgpu's
/// `SHADER_F64` naga still accepts them on f64 and emits GLSL.std.450 instructions that Vulkan
/// defines for 16- and 32-bit floats only, so the result is the driver's: on lavapipe (Mesa 22.3),
/// exp(-2.5) gave 0, ln(3) gave -88.03, sin and cos gave 0 and 1, and Softmax, Erf, Softplus,
/// ReduceLogSumExp and an integer Pow computed in f64 were wrong, while Add, Div, Sqrt, ReduceSum and
/// ReduceMax were right. A wrong answer without an error is what whittle must not give, so the wgpu
/// backend refuses f64 values altogether, with an error naming the value.
pub(crate) fn computes_f64(device: &Device) -> bool {
    !is_wgpu(device)
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

    #[test]
    fn every_backend_names_its_feature_and_unknown_names_have_none() {
        for &backend in Backend::available() {
            assert_eq!(Backend::feature_for(backend.name()), Some(backend.name()));
        }
        assert_eq!(Backend::feature_for("wgpu"), Some("wgpu"));
        assert_eq!(Backend::feature_for("ndarray"), Some("ndarray"));
        assert_eq!(Backend::feature_for("tpu"), None);
    }
}

/// Which integer kernels the fused int8 layers of a quantized model may use on x86-64.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Int8Kernels {
    /// The fastest exact ones this CPU has: AVX512-VNNI where it has it, else AVX2.
    #[default]
    Best,
    /// The AVX2 ones alone, as on a CPU without AVX512-VNNI: to measure, on a CPU that has VNNI,
    /// what one without it gets.
    Avx2,
}

/// How a session runs.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RuntimeOptions {
    pub backend: Backend,
    /// The integer kernels of fused int8 layers.
    pub int8_kernels: Int8Kernels,
    /// Plan for training: the backend's device wrapped in burn's autodiff decorator, float
    /// initializers as parameters that record gradients (see `Session::parameters`). Needs the
    /// cargo feature `autodiff`.
    pub autodiff: bool,
}

impl RuntimeOptions {
    pub fn new(backend: Backend) -> RuntimeOptions {
        RuntimeOptions { backend, autodiff: false, int8_kernels: Int8Kernels::Best }
    }

    /// The same options with the fused int8 layers on `kernels`.
    pub fn with_int8_kernels(self, int8_kernels: Int8Kernels) -> RuntimeOptions {
        RuntimeOptions { int8_kernels, ..self }
    }

    /// The same options, planning for training when `autodiff` is set.
    pub fn with_autodiff(self, autodiff: bool) -> RuntimeOptions {
        RuntimeOptions { autodiff, ..self }
    }

    /// The burn device these options name: the backend's, with autodiff when asked for.
    pub fn device(&self) -> Result<Device, RuntimeError> {
        let device = self.backend.device()?;
        if !self.autodiff {
            return Ok(device);
        }
        #[cfg(feature = "autodiff")]
        return Ok(device.autodiff());
        #[cfg(not(feature = "autodiff"))]
        Err(RuntimeError::DeviceUnavailable {
            device: format!("{} with autodiff", self.backend.name()),
            reason: "this build has no autodiff (cargo feature `autodiff` of whittle-runtime)".into(),
        })
    }
}

#[cfg(not(feature = "flex"))]
compile_error!("whittle-runtime needs at least one backend feature; `flex` is the CPU one");
