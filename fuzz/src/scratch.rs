//! A scratch directory for the targets that read files, made once per process under the system's
//! temporary directory (`TMPDIR`; `fuzz/run` points it into `fuzz/target/`).

use std::path::{Path, PathBuf};

/// `<tmp>/dapr-invoke-fuzz-<name>-<pid>`, created empty the first time.
pub fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dapr-invoke-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("a scratch directory");
    d
}

/// Writes `text` to `dir/rel`, making its directory.
pub fn write(dir: &Path, rel: &str, text: &[u8]) -> PathBuf {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("a directory");
    }
    std::fs::write(&path, text).expect("a scratch file");
    path
}
