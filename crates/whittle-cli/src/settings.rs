//! Settings resolved from the command line: flags combined and checked before any work starts.

use whittle_onnx::{ExternalData, SaveOptions};

use crate::cli::{ConvertArgs, ExternalDataArg};

/// How `convert` saves, from its flags.
pub fn save_options(args: &ConvertArgs) -> SaveOptions {
    let external_data = match args.external_data {
        ExternalDataArg::Auto => ExternalData::Auto,
        ExternalDataArg::Always => ExternalData::Always { min_bytes: args.external_min_bytes },
        ExternalDataArg::Never => ExternalData::Never,
    };
    SaveOptions { external_data }
}
