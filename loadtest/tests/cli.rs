//! The command line itself, outside any scenario.

/// `--help` into a pipe whose reader has gone (`BIN --help | head -0`): exit 0 quietly, no
/// panic or backtrace. The read end is closed before the process starts, so the write
/// always meets EPIPE.
fn help_into_a_closed_pipe(bin: &str) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(bin)
        .arg("--help")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.code(), err.as_ref()), (Some(0), ""), "{bin}");
}

#[test]
fn help_into_a_closed_pipe_exits_quietly() {
    help_into_a_closed_pipe(env!("CARGO_BIN_EXE_raptor-loadtest"));
}
