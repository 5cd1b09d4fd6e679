//! Graph passes: a pass manager that applies small rules to a fixed point, validating the graph
//! after every patch, and the cleanup and fusion passes built from them; `fuse` on top.
//!
//! A rule ([`Rule`]) looks at one node through a [`GraphView`] and returns a [`Patch`] or `None`.
//! A [`RulePass`] applies its rules node by node until a sweep changes nothing (at most
//! [`PassContext::max_sweeps`] sweeps), records which rules fired on which nodes, and validates the
//! graph after each patch. Every pass declares the [`Tolerance`] it may move outputs by; the
//! differential tests and `fuse` hold it to that. Whole-model transforms implement [`Pass`]
//! directly and run in the same [`PassManager`].

mod attrs;
mod error;
mod filter;
mod fuse;
mod infer;
mod normalize;
pub mod opset;
mod pass;
pub mod passes;
mod patch;
pub mod quantize;
pub mod rules;
mod since_versions;
mod tolerance;
mod view;

pub use error::{PassError, Result};
pub use filter::NodeFilter;
pub use fuse::{deviations, fuse, op_histogram, optimize, FuseOptions, FuseReport, ModelStats, OutputDeviation};
pub use infer::{infer_types, ValueType};
pub use pass::{Pass, PassContext, PassManager, PassRun, Rule, RuleFiring, RuleFn, RulePass, DEFAULT_FOLD_MAX_BYTES};
pub use patch::Patch;
pub use tolerance::Tolerance;
pub use view::GraphView;
