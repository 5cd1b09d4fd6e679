//! Settings resolved from the command line: flags combined and checked before any work starts.

use std::path::Path;

use anyhow::{bail, Context};
use whittle_ir::{Tensor, ValueInfo};
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

/// The feed of `run`: `--input NAME=FILE` arguments resolved against the model's feed inputs.
pub fn run_feeds(arguments: &[String], inputs: &[ValueInfo]) -> anyhow::Result<Vec<(String, Tensor)>> {
    let names: Vec<&str> = inputs.iter().map(|input| input.name.as_str()).collect();
    let mut feeds: Vec<(String, Tensor)> = Vec::new();
    let mut add = |name: String, tensor: Tensor| -> anyhow::Result<()> {
        if !names.contains(&name.as_str()) {
            bail!("'{name}' is not an input of the model (inputs: {})", names.join(", "));
        }
        if feeds.iter().any(|(fed, _)| *fed == name) {
            bail!("input '{name}' is given twice");
        }
        feeds.push((name, tensor));
        Ok(())
    };
    for argument in arguments {
        match argument.split_once('=') {
            Some((name, file)) => {
                let path = Path::new(file);
                let mut arrays = whittle_data::read_arrays(path)?;
                // A .npz for one input: its only array, or the array named after the input.
                let index = match arrays.iter().position(|array| array.name == name) {
                    Some(index) => index,
                    None if arrays.len() == 1 => 0,
                    None => bail!("{}: no array named '{name}' among {} arrays", path.display(), arrays.len()),
                };
                add(name.to_string(), arrays.swap_remove(index))?;
            }
            None => {
                let path = Path::new(argument);
                let arrays = whittle_data::read_arrays(path)?;
                let is_archive = path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("npz"));
                if is_archive {
                    for array in arrays {
                        let name = array.name.clone();
                        add(name, array).with_context(|| path.display().to_string())?;
                    }
                } else if let ([array], [only]) = (arrays.as_slice(), names.as_slice()) {
                    add(only.to_string(), array.clone())?;
                } else {
                    bail!(
                        "{}: name the input it feeds, as NAME={} (inputs: {})",
                        path.display(),
                        path.display(),
                        names.join(", ")
                    );
                }
            }
        }
    }
    let missing: Vec<&str> = names.iter().copied().filter(|name| !feeds.iter().any(|(fed, _)| fed == name)).collect();
    if !missing.is_empty() {
        bail!("no data for input(s) {}: give --input NAME=FILE for each", missing.join(", "));
    }
    Ok(feeds)
}
