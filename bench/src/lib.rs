//! Shared pieces of the load benchmark: CPU time and memory read from `/proc` (Linux only).
//!
//! The benchmark itself is two binaries, `bench-server` and `loadgen`, driven by
//! `cargo xtask bench`.

use std::fs;
use std::sync::OnceLock;

/// CPU time of a set of threads, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ThreadsCpu {
    /// Time spent in user space (`utime`).
    pub user_seconds: f64,
    /// Time spent in the kernel on the threads' behalf (`stime`): system calls, mostly.
    pub system_seconds: f64,
    /// How many threads were counted.
    pub threads: usize,
}

/// CPU time of this process's threads whose name starts with `prefix`: the sums of `utime`
/// and `stime` from `/proc/self/task/*/stat`.
///
/// The kernel counts in clock ticks (usually 10 ms), so this is precise over seconds of load,
/// not over single requests.
pub fn threads_cpu(prefix: &str) -> ThreadsCpu {
    let mut cpu = ThreadsCpu::default();
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return cpu;
    };
    let (mut user, mut system) = (0, 0);
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(name) = fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !name.trim_end().starts_with(prefix) {
            continue;
        }
        if let Some((utime, stime)) = fs::read_to_string(path.join("stat"))
            .ok()
            .and_then(|stat| stat_cpu_ticks(&stat))
        {
            user += utime;
            system += stime;
            cpu.threads += 1;
        }
    }
    cpu.user_seconds = ticks_to_seconds(user);
    cpu.system_seconds = ticks_to_seconds(system);
    cpu
}

/// CPU time, in seconds, of the whole process (all threads, `/proc/self/stat`).
pub fn process_cpu_seconds() -> f64 {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat_cpu_ticks(&stat))
        .map_or(0.0, |(utime, stime)| ticks_to_seconds(utime + stime))
}

/// `(utime, stime)` from a `/proc/.../stat` line. The thread name (field 2) is in parentheses
/// and may hold spaces, so fields are counted after its closing parenthesis.
fn stat_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, utime field 14, stime field 15.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

#[allow(clippy::cast_precision_loss)] // tick counts stay far below 2^52
fn ticks_to_seconds(ticks: u64) -> f64 {
    ticks as f64 / clock_ticks_per_second() as f64
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, read once; 100 if unknown).
fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|ticks| ticks.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100)
    })
}

/// The process's memory: peak resident set (`VmHWM`) and current resident set (`VmRSS`), in
/// KiB, from `/proc/self/status`.
pub fn process_memory_kib() -> (u64, u64) {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Resets the process's peak resident set (`VmHWM`) to its current resident set, by writing
/// `5` to `/proc/self/clear_refs` (Linux 4.0 and later). Returns whether it worked.
pub fn reset_peak_memory() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_a_name_with_spaces() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0 100 0 0";
        assert_eq!(stat_cpu_ticks(stat), Some((7, 5)));
    }

    #[test]
    fn reads_this_process_memory() {
        let (peak, current) = process_memory_kib();
        assert!(current > 0);
        assert!(peak >= current);
    }
}
