//! Background processes of a task (memcached, app servers): printed when started, killed
//! when their guard is dropped, on success and on error alike.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::{self, Failure, Result};

/// Longest wait for memcached to report its port.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running child process, killed on drop.
pub(crate) struct Running {
    pub(crate) child: Child,
    what: &'static str,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("stopped {} (pid {})", self.what, self.child.id());
    }
}

/// Spawns a prepared command, printing it (with the variables it sets) first.
pub(crate) fn spawn(command: &mut Command, what: &'static str) -> Result<Running> {
    let shown = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let env = command
        .get_envs()
        .filter_map(|(key, value)| Some(format!("{}={} ", key.to_str()?, value?.to_str()?)))
        .collect::<String>();
    eprintln!("$ {env}{shown} &");
    let child = command
        .spawn()
        .map_err(|error| Failure::new(format!("cannot start `{shown}`: {error}")))?;
    Ok(Running { child, what })
}

/// A memcached command line with the options every task uses (`-U 0`, and `-u root` when
/// running as root, which memcached requires).
pub(crate) fn memcached_command() -> Command {
    let mut command = Command::new("memcached");
    command.args(["-U", "0"]).stdin(Stdio::null());
    if cmd::is_root() {
        command.args(["-u", "root"]);
    }
    command
}

/// Starts memcached on a free loopback port that it picks itself (`-p -1` with
/// `MEMCACHED_PORT_FILENAME`, so there is no race for the port); returns it with its port.
pub(crate) fn start_memcached_tcp(work: &Path, extra_args: &[&str]) -> Result<(Running, u16)> {
    let port_file = work.join("memcached.ports");
    let _ = std::fs::remove_file(&port_file);
    let mut command = memcached_command();
    command
        .args(["-l", "127.0.0.1", "-p", "-1"])
        .args(extra_args)
        .env("MEMCACHED_PORT_FILENAME", &port_file);
    let running = spawn(&mut command, "memcached (tcp)")?;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let port = std::fs::read_to_string(&port_file).ok().and_then(|ports| {
            ports
                .lines()
                .find_map(|line| line.strip_prefix("TCP INET: ")?.trim().parse::<u16>().ok())
        });
        if let Some(port) = port {
            return Ok((running, port));
        }
        if Instant::now() > deadline {
            return Err(Failure::new("memcached did not report its port in time"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
