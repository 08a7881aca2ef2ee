//! The accepting side of a link, as a stranger meets it: rustls configured exactly as a node's
//! acceptor (TLS 1.3 only, ALPN `raptor-link/2`, no resumption), then the secret proof, then
//! the `Hello` frame. Never a panic, and never past the proof without the secret:
//!
//! * first byte 0: the rest are raw bytes from the network (a broken or hostile ClientHello);
//! * first byte 1: a real client completes TLS in memory, then sends the rest as its first
//!   application bytes: the proof check must refuse them;
//! * first byte 2: as 1, but the client sends a valid proof first; the rest reaches the frame
//!   reader as if from a peer that knows the secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raptor_cluster::link::auth::{check_dialer, exporter, LinkTls};
use raptor_cluster::secret::{Keys, Role, Secrets};
use raptor_cluster::wire::FrameReader;
use rustls::{ClientConnection, ServerConnection};
use std::io::{Read, Write};
use std::sync::OnceLock;

fn setup() -> &'static (LinkTls, Keys) {
    static S: OnceLock<(LinkTls, Keys)> = OnceLock::new();
    S.get_or_init(|| {
        let s = Secrets::new(["fuzz-link-secret-0123456789"]).unwrap();
        (LinkTls::new().unwrap(), Keys::derive("fuzz", &s))
    })
}

/// Moves what one side wrote to the other until neither has anything to say.
fn pump(c: &mut ClientConnection, s: &mut ServerConnection) -> bool {
    for _ in 0..16 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            if s.read_tls(&mut rd).is_err() || s.process_new_packets().is_err() {
                return false;
            }
        }
        let mut back = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut back).unwrap();
        }
        let mut rd = &back[..];
        while !rd.is_empty() {
            if c.read_tls(&mut rd).is_err() || c.process_new_packets().is_err() {
                return false;
            }
        }
        if buf.is_empty() && back.is_empty() {
            return true;
        }
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (tls, keys) = setup();
    let mut server = ServerConnection::new(tls.server_config()).unwrap();
    if mode == 0 {
        let mut rd = rest;
        while !rd.is_empty() {
            match server.read_tls(&mut rd) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if server.process_new_packets().is_err() {
                break;
            }
        }
        assert!(
            server.is_handshaking(),
            "a stranger's bytes completed a handshake"
        );
        return;
    }
    let name = "raptor-cluster".try_into().unwrap();
    let mut client = ClientConnection::new(tls.client_config(), name).unwrap();
    assert!(pump(&mut client, &mut server) && !server.is_handshaking());
    let x = exporter(&server).expect("both sides speak raptor-link/2");
    if mode == 2 {
        let proof = keys.prove(Role::Dialer, &exporter(&client).unwrap());
        client.writer().write_all(&proof).unwrap();
    }
    client.writer().write_all(rest).unwrap();
    let _ = pump(&mut client, &mut server);
    let mut plain = Vec::new();
    let _ = server.reader().read_to_end(&mut plain);
    let Some(proof) = plain.get(..32) else {
        return;
    };
    match check_dialer(keys, &x, proof) {
        Ok(()) => assert_eq!(mode, 2, "a proof the fuzzer could not make was accepted"),
        Err(_) => {
            assert_ne!(mode, 2, "the real proof was refused");
            return;
        }
    }
    let mut frames = FrameReader::new(1 << 20);
    frames.extend(&plain[32..]);
    while let Ok(Some(_)) = frames.next_msg() {}
});
