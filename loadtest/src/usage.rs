//! CPU time and memory of this process and of the server under test.
//!
//! Client CPU comes from `getrusage(RUSAGE_SELF)` (all our threads, user + system).
//! Server CPU and RSS come from `/proc/PID/stat` and `/proc/PID/status`, so they are
//! only available when the server runs on this machine and its pid is given.

use std::fs;
use std::io;
use std::time::Duration;

/// CPU time (user + system) this process has used so far, all threads.
pub fn self_cpu() -> Duration {
    // SAFETY: rusage is plain data; zeroed is a valid value and getrusage overwrites it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer cannot fail.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time (utime + stime) process `pid` has used so far.
pub fn process_cpu(pid: u32) -> io::Result<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat_cpu(&stat, clock_ticks()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected /proc/PID/stat format",
        )
    })
}

/// Resident set size of process `pid`, in KiB.
pub fn process_rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_rss(&status)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/PID/status"))
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// utime + stime from a `/proc/PID/stat` line. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat_cpu(stat: &str, ticks_per_sec: u64) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // after ')' come state (field 3), …, utime (field 14), stime (field 15)
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / ticks_per_sec))
}

fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU used by client and (optionally) server over one measurement window.
pub struct CpuWindow {
    server_pid: Option<u32>,
    client_start: Duration,
    server_start: Option<Duration>,
}

impl CpuWindow {
    pub fn start(server_pid: Option<u32>) -> io::Result<Self> {
        let server_start = server_pid.map(process_cpu).transpose()?;
        Ok(Self {
            server_pid,
            client_start: self_cpu(),
            server_start,
        })
    }

    /// (client seconds, server seconds if a pid was given) since `start`.
    pub fn stop(&self) -> io::Result<(f64, Option<f64>)> {
        let client = (self_cpu().saturating_sub(self.client_start)).as_secs_f64();
        let server = match (self.server_pid, self.server_start) {
            (Some(pid), Some(start)) => Some(process_cpu(pid)?.saturating_sub(start).as_secs_f64()),
            _ => None,
        };
        Ok((client, server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_name() {
        let stat =
            "1234 (raptor (2) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat_cpu(stat, 100), Some(Duration::from_secs(3)));
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\traptor\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nThreads:\t3\n";
        assert_eq!(parse_status_rss(status), Some(4321));
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(process_rss_kib(me).unwrap() > 0);
        assert!(process_cpu(me).is_ok());
        let w = CpuWindow::start(Some(me)).unwrap();
        let (c, s) = w.stop().unwrap();
        assert!(c >= 0.0 && s.unwrap() >= 0.0);
    }
}
