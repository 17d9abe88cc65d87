//! Hygiene checks that run under `cargo test`, so the test suite is the only gate.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    rust_files(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }

    fn all_rust_files() -> Vec<PathBuf> {
        let root = super::super::project_root();
        let mut files = Vec::new();
        for dir in ["src", "crates", "tests", "benches", "xtask"] {
            rust_files(&root.join(dir), &mut files);
        }
        assert!(files.len() > 20, "sanity: found {} files", files.len());
        files
    }

    /// Every file says what it is for in a `//!` header.
    #[test]
    fn every_rust_file_starts_with_a_module_doc() {
        let missing: Vec<String> = all_rust_files()
            .into_iter()
            .filter(|p| !std::fs::read_to_string(p).unwrap().starts_with("//!"))
            .map(|p| p.display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "files without a //! header: {missing:#?}"
        );
    }

    /// Library crates log through tracing or return errors; they never print.
    #[test]
    fn library_crates_do_not_print() {
        let offenders: Vec<String> = all_rust_files()
            .into_iter()
            .filter(|p| {
                let s = p.to_string_lossy();
                s.contains("/crates/") && s.contains("/src/")
            })
            .filter(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                text.contains("println!(") || text.contains("eprintln!(") || text.contains("dbg!(")
            })
            .map(|p| p.display().to_string())
            .collect();
        assert!(
            offenders.is_empty(),
            "printing in library code: {offenders:#?}"
        );
    }
}
