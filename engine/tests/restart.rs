//! Restarting on the same port: a server stopped with SIGTERM leaves TIME-WAIT sockets behind
//! (it closes its clients first), and the next start must bind at once anyway; a live server
//! on the port still makes a second one refuse to start.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port below the ephemeral range (so no client socket of a parallel test takes it) that
/// nothing holds right now.
fn free_port() -> u16 {
    loop {
        let port = 20_000 + fastrand::u16(..12_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Starts `raptor serve --bind 127.0.0.1:{port}`; `Err` with what it printed on stdout and
/// stderr if it exited instead of listening.
fn serve_on(port: u16) -> Result<Child, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_raptor"))
        .args([
            "serve",
            "--shards",
            "2",
            "--no-pin",
            "--metrics-bind",
            "off",
            "--bind",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env("RAPTOR_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start raptor");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.contains(&format!("listening on 127.0.0.1:{port}")) {
        return Ok(child);
    }
    let out = child.wait_with_output().unwrap();
    Err(format!(
        "{line}{} (exit {:?})",
        String::from_utf8_lossy(&out.stderr),
        out.status.code()
    ))
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        assert!(t0.elapsed() < within, "did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn connect(port: u16) -> Client {
    let (ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{port}/app/{KEY}?protocol=7&client=js&version=8.6.0"
    ))
    .await
    .expect("ws connect");
    Client::established(ws).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_port_binds_at_once_three_times() {
    let port = free_port();
    let mut server = serve_on(port).expect("first start");
    for round in 1..=3 {
        let mut c = connect(port).await;
        c.subscribe("x").await;
        unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
        assert_eq!(c.expect_close().await, 4200);
        assert_eq!(wait_exit(&mut server, Duration::from_secs(15)), Some(0));
        // The server closed first, so its side of that connection is in TIME-WAIT now.
        let t0 = Instant::now();
        server = serve_on(port).unwrap_or_else(|e| panic!("restart {round} refused: {e}"));
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }
    // The last one serves.
    let mut c = connect(port).await;
    c.subscribe("x").await;
    let _ = server.kill();
    let _ = server.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_a_live_servers_port_is_refused_naming_it() {
    let port = free_port();
    let mut first = serve_on(port).expect("first start");
    let err = serve_on(port).map(|mut c| {
        let _ = c.kill();
        let _ = c.wait();
    });
    let err = err.expect_err("a second server started on a port a live one holds");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")) && err.contains("exit Some(1)"),
        "{err}"
    );
    // The first one is untouched.
    let mut c = connect(port).await;
    c.subscribe("x").await;
    let _ = first.kill();
    let _ = first.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_right_after_sigkill_binds() {
    // No drain: the dead server's listeners stay bound a few milliseconds after it is gone,
    // until the kernel tears its io_uring down.
    let port = free_port();
    let mut server = serve_on(port).expect("first start");
    for round in 1..=3 {
        let mut c = connect(port).await;
        c.subscribe("x").await;
        server.kill().unwrap();
        server.wait().unwrap();
        server = serve_on(port).unwrap_or_else(|e| panic!("restart {round} refused: {e}"));
    }
    let mut c = connect(port).await;
    c.subscribe("x").await;
    let _ = server.kill();
    let _ = server.wait();
}
