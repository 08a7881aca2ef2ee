//! A shard that cannot start stops the whole server at once, with the cause and the remedy in
//! one line, instead of leaving it hanging. Both conditions are real: the child process gets
//! the locked-memory limit `prlimit --memlock=65536:65536` would give it, or a seccomp filter
//! that refuses io_uring the way Docker's default profile does.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `raptor serve` with `setup` applied in the child before exec; kills it and fails if it
/// is still running after 10 s.
fn serve_under(setup: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raptor"));
    cmd.args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--no-pin",
        "--metrics-bind",
        "off",
    ])
    .env("RAPTOR_LOG", "info")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // SAFETY: `setup` only makes async-signal-safe system calls (setrlimit, prctl).
    unsafe { cmd.pre_exec(setup) };
    let mut child = cmd.spawn().expect("start raptor");
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after 10 s; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    out
}

/// The last line on stderr, which must carry the cause; and nothing on stdout (no "listening").
fn failure_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr.lines().last().unwrap_or_default().to_string()
}

#[test]
fn a_memlock_limit_below_512_kib_stops_the_start_naming_memlock() {
    let out = serve_under(|| {
        let lim = libc::rlimit {
            rlim_cur: 65536,
            rlim_max: 65536,
        };
        // SAFETY: a plain system call on a valid struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    });
    let line = failure_line(&out);
    assert!(
        line.starts_with("raptor: cannot start the shards:")
            && line.contains("memlock")
            && line.contains("64 KiB")
            && line.contains("LimitMEMLOCK"),
        "{line}"
    );
    // One line: no panic report or backtrace around it.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn io_uring_refused_by_seccomp_stops_the_start_naming_io_uring() {
    let out = serve_under(|| {
        // A classic BPF program: `io_uring_setup` fails with EPERM, everything else runs.
        let nr = libc::SYS_io_uring_setup as u32;
        let mut filter = [
            bpf(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0), // seccomp_data.nr
            bpf(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, 0, 1, nr),
            bpf(
                libc::BPF_RET | libc::BPF_K,
                0,
                0,
                libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            ),
            bpf(libc::BPF_RET | libc::BPF_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        ];
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_mut_ptr(),
        };
        // SAFETY: plain system calls; `prog` points at `filter`, which outlives them.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    });
    let line = failure_line(&out);
    assert!(
        line.starts_with("raptor: cannot start the shards:")
            && line.contains("io_uring")
            && line.contains("seccomp")
            && line.contains("5.8"),
        "{line}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn bpf(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}
