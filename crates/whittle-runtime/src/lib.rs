//! Plans and executes whittle graphs on burn, so that whittle can measure the models it changes.
//!
//! A [`Session`] plans a [`whittle_ir::Model`] once: it parses every node into a typed [`ops::Op`]
//! (rejecting ops, opsets and attributes it cannot run before anything runs), orders the nodes,
//! uploads the initializers and computes when each value is used for the last time. [`Session::run`]
//! then validates the feeds against the declared inputs, evaluates the nodes in order on the chosen
//! burn device, frees every intermediate after its last use and returns the outputs as host tensors.
//!
//! burn 0.22 chooses the backend at run time through a `Device` (`Device::flex()` for its pure-Rust
//! CPU backend); tensors carry no backend type, so one implementation of each op serves every device.

mod broadcast;
mod codes;
mod control;
mod device;
mod error;
mod fold;
mod fuse;
mod fuse_int8;
mod host;
mod int_input;
mod kernels;
pub mod ops;
mod plan;
mod quant;
mod reduce;
mod session;
mod spatial;
mod unary;
mod value;

pub use device::{Backend, Int8Kernels, RuntimeOptions};
pub use error::{Result, RuntimeError};
pub use session::{NamedTensors, Session, StepTime};
pub use value::{ElementKind, Value, MAX_RANK};

/// The burn-tensor crate the runtime's values are built on, for callers that compute on
/// [`Value`]s (a loss for [`Session::forward`]'s outputs) with the same version.
pub use burn_tensor;
