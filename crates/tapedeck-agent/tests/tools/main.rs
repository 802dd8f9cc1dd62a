//! Tool backends and approvals: subprocess tools (python3 scripts in a temporary folder), the
//! builtin `http.get` against a local server on 127.0.0.1, and the approvals file and prompt.

mod approvals;
mod http_get;
mod subprocess;

use std::path::PathBuf;
use std::sync::OnceLock;

/// The real python3 interpreter (not a version-manager shim, so a script's pid is the pid of
/// the process the tool started).
pub fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed by these tests");
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(!path.is_empty(), "python3 did not say where it is");
        path
    })
}

/// Writes `text` to `dir/name`, creating folders.
pub fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create folder");
    }
    std::fs::write(&path, text).expect("write file");
    path
}
