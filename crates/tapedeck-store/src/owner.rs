//! Which process is recording a run, and whether it is still alive.
//!
//! A run is `running` while its process records it. When that process dies without finishing
//! the run (killed, crashed, power cut), the next process to open the store sees that the owner
//! is gone and marks the run `incomplete`. The owner is `host/pid/start-time`: the start time
//! tells a live process from a later one that was given the same pid.
//!
//! Only a process on the same host can tell; for the others the run's lease decides
//! (`runs.lease_until`, renewed by the writer thread: `Store::expire_leases`).
//!
//! The host name is the kernel's, or [`HOST_VAR`] when set (a container given a stable name, or
//! a test playing a recorder on another host).

/// The environment variable that overrides this machine's host name in owner strings.
pub(crate) const HOST_VAR: &str = "TAPEDECK_HOST";

/// This process's owner string.
pub(crate) fn current() -> String {
    let pid = std::process::id();
    format!(
        "{}/{}/{}",
        hostname(),
        pid,
        start_time(pid).unwrap_or_default()
    )
}

/// Whether the process named by `owner` is certainly gone. Owners on another host, or on a
/// system where this cannot be told, are assumed alive.
pub(crate) fn is_dead(owner: &str) -> bool {
    let mut parts = owner.rsplitn(3, '/');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() || !cfg!(target_os = "linux") {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    match start_time(pid) {
        None => true,
        Some(now) => !start.is_empty() && now != start,
    }
}

/// This machine's host name: [`HOST_VAR`] when set, else the kernel's.
pub(crate) fn hostname() -> String {
    if let Some(host) = std::env::var(HOST_VAR)
        .ok()
        .filter(|h| !h.trim().is_empty())
    {
        return host.trim().to_owned();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// Field 22 of `/proc/PID/stat`: the process's start time in clock ticks since boot.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces; fields after it
    // are plain.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19).map(str::to_owned)
}
