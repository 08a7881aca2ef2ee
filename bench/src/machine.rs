//! What the benchmark ran on, and how busy the machine was: a result is only meaningful with
//! the machine and the other processes' CPU written next to it (stack-notes §10.11).

use std::fs;
use std::time::Instant;

/// The machine, as `docs/benchmarks.md` describes it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory: String,
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown".to_string(), |(_, v)| v.trim().to_string());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| "unknown".into());
        let memory = fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("MemTotal"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or("unknown".into(), |kib| {
                format!("{:.1} GiB", kib / 1024.0 / 1024.0)
            });
        Self {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            kernel,
            memory,
        }
    }
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn loadavg() -> [f64; 3] {
    let s = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN));
    [
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
    ]
}

/// Busy and total jiffies of the whole machine (first line of `/proc/stat`).
fn machine_jiffies() -> (u64, u64) {
    let s = fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = f.iter().take(8).sum();
    // idle + iowait are not busy
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU use over one scenario, in cores (CPU seconds per wall second): the whole machine, this
/// load generator, the server, and everyone else (the rest; noise if well above zero).
#[derive(Debug, Clone, Copy, Default)]
pub struct CoresUsed {
    pub machine: f64,
    pub client: f64,
    pub server: f64,
    pub others: f64,
}

/// A window over which [`CoresUsed`] is measured.
pub struct CpuShare {
    at: Instant,
    jiffies: u64,
    client: f64,
    server: Option<(u32, f64)>,
}

impl CpuShare {
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            jiffies: machine_jiffies().0,
            client: raptor_loadtest::usage::self_cpu().as_secs_f64(),
            server: server_pid.map(|p| (p, server_cpu(p))),
        }
    }

    pub fn stop(&self) -> CoresUsed {
        let wall = self.at.elapsed().as_secs_f64().max(1e-9);
        let machine = (machine_jiffies().0 - self.jiffies) as f64 / clk_tck() / wall;
        let client = (raptor_loadtest::usage::self_cpu().as_secs_f64() - self.client) / wall;
        let server = self
            .server
            .map_or(0.0, |(pid, before)| (server_cpu(pid) - before) / wall);
        CoresUsed {
            machine,
            client,
            server,
            others: (machine - client - server).max(0.0),
        }
    }
}

fn server_cpu(pid: u32) -> f64 {
    raptor_loadtest::usage::process_cpu(pid).map_or(0.0, |d| d.as_secs_f64())
}

/// Waits until the whole machine is busier than `threshold` cores for no longer than `max`,
/// measuring in 3 s windows. Returns whether it got quiet, and the last window's busy cores.
pub fn wait_quiet(max: std::time::Duration, threshold: f64) -> (bool, f64) {
    let start = Instant::now();
    loop {
        let (b0, t) = (machine_jiffies().0, Instant::now());
        std::thread::sleep(std::time::Duration::from_secs(3));
        let busy = (machine_jiffies().0 - b0) as f64 / clk_tck() / t.elapsed().as_secs_f64();
        if busy < threshold {
            return (true, busy);
        }
        if start.elapsed() >= max {
            return (false, busy);
        }
    }
}
