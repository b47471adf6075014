//! `s3edge::config::validate_sites` on arbitrary site files: it must never
//! panic, and must answer either sites or at least one problem.
//!
//! The input is split on NUL bytes into up to four files (lossy UTF-8), so the
//! checks across files (a host claimed twice, several default sites) run too.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

/// File names, including ones that are not valid site names.
const NAMES: [&str; 6] = [
    "sites/a.toml",
    "sites/b.toml",
    "sites/c-site_1.example.toml",
    "sites/bad name.toml",
    "sites/.toml",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let files: Vec<(PathBuf, String)> = rest
        .split(|&b| b == 0)
        .take(4)
        .enumerate()
        .map(|(i, text)| {
            let name = NAMES[(usize::from(selector) + i) % NAMES.len()];
            (
                PathBuf::from(name),
                String::from_utf8_lossy(text).into_owned(),
            )
        })
        .collect();
    match s3edge::config::validate_sites(&files) {
        Ok(sites) => assert_eq!(sites.len(), files.len()),
        Err(errors) => {
            assert!(!errors.0.is_empty(), "Err without a problem");
            let _ = errors.to_string();
        }
    }
});
