//! The pinned Python venv that interop checks run in (onnx.checker, ONNX Runtime).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::run;

/// Creates `target/venvs/interop` from `xtask/py/requirements-interop.txt` unless it is already
/// installed from the same requirements; returns its python.
pub fn interop_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/venvs/interop");
    let python = venv.join("bin/python");
    let requirements_path = root.join("xtask/py/requirements-interop.txt");
    let requirements = std::fs::read_to_string(&requirements_path).with_context(|| format!("{}", requirements_path.display()))?;
    let stamp = venv.join("whittle-requirements.txt");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(requirements.as_str()) {
        return Ok(python);
    }
    let system_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(system_python).args(["-m", "venv", "--clear"]).arg(&venv))?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements_path))?;
    std::fs::write(&stamp, requirements)?;
    Ok(python)
}
