//! One module per subcommand; each calls the libraries and prints its result.

pub mod bench;
pub mod compare;
pub mod convert;
pub mod inspect;
pub mod quantize;
pub mod run;

use whittle_onnx::LoadedModel;

/// Loads a model and reports on stderr what of it could not be kept.
pub fn load_model(path: &std::path::Path) -> anyhow::Result<LoadedModel> {
    let loaded = whittle_onnx::load(path)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {}: {warning}", path.display());
    }
    Ok(loaded)
}

/// Writes data to stdout; unlike `print!`, a closed pipe comes back as an error instead of a panic.
pub fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

pub use whittle_eval::human_bytes;
