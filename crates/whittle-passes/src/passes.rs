//! The passes whittle ships, by name, and the default order `fuse` runs them in.
//!
//! Order, and why: `cleanup` first, so that fusion sees canonical graphs (Constant nodes as
//! initializers, shape subgraphs folded, Identity and Dropout gone: a BatchNormalization's
//! statistics must be initializers before it can fold). `fuse-conv` then folds BatchNormalization,
//! Mul and Add into weights before `fuse-matmul`, because a Gemm made from MatMul + Add could
//! itself take a following BatchNormalization. `fuse-patterns` (LayerNormalization, GELU) comes
//! after, on a graph whose constants are folded so the pattern's scalars are visible. A second
//! `cleanup` removes what the fusions left unread and folds what they made constant.

use crate::error::{PassError, Result};
use crate::pass::{Pass, PassManager, RulePass};
use crate::rules;
use crate::tolerance::Tolerance;

/// Every pass, in the default order (without the repeated cleanup).
pub const NAMES: &[&str] = &["cleanup", "fuse-conv", "fuse-matmul", "fuse-patterns"];

/// The default pipeline of `fuse`.
pub const DEFAULT_PIPELINE: &[&str] = &["cleanup", "fuse-conv", "fuse-matmul", "fuse-patterns", "cleanup"];

/// The pass called `name`.
pub fn by_name(name: &str) -> Result<Box<dyn Pass>> {
    let rule_pass = |name, tolerance, families: &[&[crate::pass::Rule]]| -> Box<dyn Pass> {
        Box::new(RulePass { name, tolerance, rules: families.iter().flat_map(|rules| rules.iter().copied()).collect() })
    };
    Ok(match name {
        "cleanup" => rule_pass("cleanup", Tolerance::Exact, &[rules::fold::RULES, rules::cleanup::RULES]),
        "fuse-conv" => rule_pass("fuse-conv", Tolerance::BATCH_NORM_FOLD, &[rules::conv::RULES]),
        "fuse-matmul" => rule_pass("fuse-matmul", Tolerance::Exact, &[rules::gemm::RULES]),
        "fuse-patterns" => rule_pass("fuse-patterns", Tolerance::Exact, &[rules::norm::RULES]),
        _ => return Err(PassError::UnknownPass { name: name.to_string(), known: NAMES.join(", ") }),
    })
}

/// A manager running the passes `names` in that order.
pub fn by_names(names: &[&str]) -> Result<PassManager> {
    Ok(PassManager::new(names.iter().map(|name| by_name(name)).collect::<Result<_>>()?))
}

/// The default pipeline restricted to `only` (when given) and without `disabled`, in default order.
pub fn pipeline(only: Option<&[String]>, disabled: &[String]) -> Result<PassManager> {
    for name in only.unwrap_or_default().iter().chain(disabled) {
        by_name(name)?;
    }
    let chosen: Vec<&str> = DEFAULT_PIPELINE
        .iter()
        .copied()
        .filter(|name| only.is_none_or(|only| only.iter().any(|wanted| wanted == name)))
        .filter(|name| !disabled.iter().any(|off| off == name))
        .collect();
    by_names(&chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_keep_the_default_order_and_reject_unknown_names() {
        let names = |manager: PassManager| manager.passes.iter().map(|pass| pass.name()).collect::<Vec<_>>();
        let only = vec!["fuse-matmul".to_string(), "cleanup".to_string()];
        assert_eq!(names(pipeline(Some(&only), &[]).unwrap()), ["cleanup", "fuse-matmul", "cleanup"]);
        assert_eq!(names(pipeline(None, &["cleanup".to_string()]).unwrap()), ["fuse-conv", "fuse-matmul", "fuse-patterns"]);
        let err = pipeline(None, &["fold".to_string()]).unwrap_err();
        assert_eq!(err.to_string(), "unknown pass 'fold' (passes: cleanup, fuse-conv, fuse-matmul, fuse-patterns)");
    }
}
