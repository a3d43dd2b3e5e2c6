//! cargo-deny, offline, with the advisories checked against a local snapshot of the RustSec
//! database (these machines cannot fetch it).

use std::path::Path;
use std::process::Command;

use crate::cmd::{self, Failure, Result};
use crate::install;

/// Where cargo-deny looks for the database named by `db-urls` under `db-path` in `deny.toml`.
const DB_DIR: &str = "target/advisory-db/advisory-db-3157b0e258782691";

/// The snapshot of the RustSec database, beside the project's folder.
const SNAPSHOT: &str = "../shared/advisory-db";

/// Runs `cargo deny --offline check` for licenses, bans and sources, and advisories when
/// the snapshot is present.
pub(crate) fn check() -> Result {
    install::cargo_tool("cargo-deny", "cargo-deny")?;
    // `cargo metadata` needs every platform's crates in the local cache to work offline.
    cmd::run("cargo", ["fetch", "--locked"])?;

    let root = cmd::workspace_root();
    let snapshot = root.join(SNAPSHOT);
    let mut checks = vec!["licenses", "bans", "sources"];
    if snapshot.join("crates").is_dir() {
        prepare_database(&root, &snapshot)?;
        checks.push("advisories");
    } else {
        eprintln!(
            "warning: no RustSec snapshot at {}; skipping the advisories check only",
            snapshot.display()
        );
    }
    let mut args = vec!["deny", "--offline", "check"];
    args.extend(checks);
    cmd::run("cargo", args)
}

/// Copies the snapshot into the git repository cargo-deny expects, committed with the
/// snapshot's own date so that its age is reported truthfully.
fn prepare_database(root: &Path, snapshot: &Path) -> Result {
    let db = root.join(DB_DIR);
    let stamp = std::fs::read_to_string(snapshot.join("SNAPSHOT")).unwrap_or_default();
    if std::fs::read_to_string(db.join("SNAPSHOT")).is_ok_and(|copied| copied == stamp) {
        return Ok(());
    }
    if db.exists() {
        std::fs::remove_dir_all(&db)
            .map_err(|error| Failure::new(format!("cannot remove {}: {error}", db.display())))?;
    }
    std::fs::create_dir_all(&db)
        .map_err(|error| Failure::new(format!("cannot create {}: {error}", db.display())))?;
    let mut copy = Command::new("cp");
    copy.arg("-R")
        .arg(snapshot.join("."))
        .arg(&db)
        .current_dir(root);
    cmd::run_command(&mut copy)?;
    cmd::run_command(Command::new("chmod").args(["-R", "u+w"]).arg(&db))?;

    let date = snapshot_date(&stamp).unwrap_or("2000-01-01");
    let timestamp = format!("{date}T00:00:00Z");
    let git = |args: &[&str]| {
        let mut command = Command::new("git");
        command
            .args(args)
            .current_dir(&db)
            .env("GIT_AUTHOR_NAME", "advisory-db snapshot")
            .env("GIT_AUTHOR_EMAIL", "snapshot@localhost")
            .env("GIT_COMMITTER_NAME", "advisory-db snapshot")
            .env("GIT_COMMITTER_EMAIL", "snapshot@localhost")
            .env("GIT_AUTHOR_DATE", &timestamp)
            .env("GIT_COMMITTER_DATE", &timestamp);
        cmd::run_command(&mut command)
    };
    git(&["init", "--quiet"])?;
    git(&["add", "--all"])?;
    git(&["commit", "--quiet", "--no-gpg-sign", "-m", stamp.trim()])
}

/// The `(YYYY-MM-DD)` date in the snapshot's stamp.
fn snapshot_date(stamp: &str) -> Option<&str> {
    let start = stamp.find('(')? + 1;
    let date = stamp.get(start..start + 10)?;
    date.bytes()
        .all(|b| b.is_ascii_digit() || b == b'-')
        .then_some(date)
}

#[cfg(test)]
mod tests {
    use super::snapshot_date;

    #[test]
    fn reads_the_date_of_the_snapshot_stamp() {
        assert_eq!(
            snapshot_date("snapshot of rustsec/advisory-db at commit bf5c (2026-08-21)\n"),
            Some("2026-08-21")
        );
        assert_eq!(snapshot_date("no date"), None);
    }
}
