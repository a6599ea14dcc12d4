//! Embeds the blueprints of `../blueprints` in the library: every file of every blueprint
//! folder becomes an `include_str!` in `$OUT_DIR/embedded_blueprints.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.join("../blueprints");
    println!("cargo:rerun-if-changed={}", root.display());

    let mut code = String::from("&[\n");
    let mut blueprints: Vec<_> = fs::read_dir(&root)
        .expect("blueprints directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    blueprints.sort();
    for blueprint in blueprints {
        let name = blueprint
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        let mut files = Vec::new();
        files_under(&blueprint, &mut files);
        for file in files {
            println!("cargo:rerun-if-changed={}", file.display());
            let relative = file
                .strip_prefix(&blueprint)
                .expect("file under blueprint")
                .to_str()
                .expect("utf-8 path");
            let absolute = file.canonicalize().expect("canonical path");
            writeln!(
                code,
                "    ({name:?}, {relative:?}, include_str!({:?})),",
                absolute.to_str().expect("utf-8 path")
            )
            .expect("write to string");
        }
    }
    code.push_str("]\n");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_blueprints.rs");
    fs::write(out, code).expect("write embedded_blueprints.rs");
}
