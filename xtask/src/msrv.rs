//! The lockfile against the declared minimum Rust version: only one toolchain is installed
//! here, so instead of building with the oldest supported compiler, every locked package's
//! own `rust-version` is checked not to exceed the workspace's.

use std::process::Command;

use crate::cmd::{self, Failure, Result};

/// Fails when a locked package needs a newer Rust than the workspace declares.
pub(crate) fn check() -> Result {
    eprintln!("$ cargo metadata --format-version 1 --locked (MSRV check)");
    let output = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(cmd::workspace_root())
        .output()
        .map_err(|error| Failure::new(format!("cannot run cargo metadata: {error}")))?;
    if !output.status.success() {
        return Err(Failure::new(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| Failure::new(format!("cargo metadata printed no JSON: {error}")))?;
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .map(|ids| ids.iter().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    let declared = packages
        .iter()
        .filter(|package| {
            package["id"]
                .as_str()
                .is_some_and(|id| members.contains(&id))
        })
        .filter_map(|package| package["rust_version"].as_str())
        .filter_map(parse)
        .min()
        .ok_or_else(|| Failure::new("no workspace member declares rust-version"))?;
    let newer: Vec<String> = packages
        .iter()
        .filter_map(|package| {
            let needed = package["rust_version"].as_str()?;
            (parse(needed)? > declared).then(|| {
                format!(
                    "{} {} needs Rust {needed}",
                    package["name"].as_str().unwrap_or("?"),
                    package["version"].as_str().unwrap_or("?")
                )
            })
        })
        .collect();
    if newer.is_empty() {
        eprintln!(
            "every locked package builds with Rust {}.{}.{}",
            declared.0, declared.1, declared.2
        );
        Ok(())
    } else {
        Err(Failure::new(format!(
            "the lockfile needs a newer Rust than rust-version declares:\n  {}",
            newer.join("\n  ")
        )))
    }
}

/// `1.88` or `1.88.0` as a comparable triple.
fn parse(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn versions_compare_as_numbers() {
        assert_eq!(parse("1.88"), Some((1, 88, 0)));
        assert!(parse("1.100.0") > parse("1.88"));
        assert_eq!(parse("x"), None);
    }
}
