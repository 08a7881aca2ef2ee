//! Link security (ADR 0007): every link is TLS 1.3, and both ends prove the cluster secret
//! over that very session before anything else is sent.
//!
//! 1. TLS 1.3 (rustls, ring provider), ALPN [`ALPN`] required on both sides. The acceptor
//!    presents an ephemeral self-signed Ed25519 certificate made at start; the dialer checks
//!    the handshake signature against it as usual, but does not look for a trust anchor: the
//!    certificate names nobody, and identity comes from step 2. No session resumption (every
//!    link proves the secret afresh), no 0-RTT.
//! 2. Both ends export 32 bytes from the session (RFC 8446 §7.5, label [`EXPORTER_LABEL`]):
//!    the same on both ends of one session, different for every session, and unknown to
//!    anyone in the middle of two sessions. The dialer sends
//!    `HMAC-SHA256(link key, "raptor link proof v1\0" ‖ "D" ‖ exporter)` under its first
//!    secret; the acceptor checks it under each accepted secret and only then answers with its
//!    own proof (`"A"`). A stranger therefore learns nothing, not even something to test
//!    guesses of the secret against: the acceptor proves nothing to a dialer that did not
//!    prove first, and dialers only dial addresses learnt from sealed gossip.
//! 3. Then the `Hello` exchange, unchanged, inside TLS.
//!
//! Only a node that knows an accepted secret gets past step 2, and what follows is encrypted
//! and integrity-protected by TLS: no stranger can read or inject frames.

use crate::secret::{Keys, Proof, Role};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

/// The link protocol, named in TLS ALPN: version 2 is TLS 1.3 + the secret proof + frames of
/// wire version 1 (version 1 was the same frames over plain TCP, before ADR 0007). A later
/// release that changes the handshake offers a new name first and this one second.
pub const ALPN: &[u8] = b"raptor-link/2";
/// The TLS exporter label of the proof.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-raptor-link-proof";
/// The name the dialer puts in SNI; nothing checks it.
const SERVER_NAME: &str = "raptor-cluster";

/// Why the TLS side could not be set up (an internal error: the node does not start).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot make the link certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("cannot configure TLS for links: {0}")]
    Tls(#[from] rustls::Error),
}

/// Why a secured handshake failed (the socket is closed).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("tls: {0}")]
    Tls(std::io::Error),
    #[error("peer does not speak {}", String::from_utf8_lossy(ALPN))]
    Alpn,
    #[error("peer did not prove an accepted cluster secret")]
    BadProof,
}

/// Both ends' TLS configurations, made once at start; cheap to clone.
#[derive(Clone)]
pub struct LinkTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl LinkTls {
    /// A fresh key pair and self-signed certificate, and the configurations around them.
    pub fn new() -> Result<LinkTls, SetupError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        let cert =
            rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()])?.self_signed(&key)?;
        let cert_der: CertificateDer<'static> = cert.der().clone();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = provider();

        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(vec![cert_der], key_der)?;
        server.alpn_protocols = vec![ALPN.to_vec()];
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;

        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ProofDecides {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth();
        client.alpn_protocols = vec![ALPN.to_vec()];
        client.resumption = rustls::client::Resumption::disabled();

        let (server, client) = (Arc::new(server), Arc::new(client));
        Ok(LinkTls {
            acceptor: TlsAcceptor::from(server.clone()),
            connector: TlsConnector::from(client.clone()),
            server,
            client,
        })
    }

    /// The acceptor's rustls configuration (the fuzz target `link_handshake` drives it
    /// without sockets).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// The dialer's rustls configuration.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }

    /// The acceptor's side: TLS, then the dialer's proof, then ours. The caller reads and
    /// writes the `Hello`s next.
    pub async fn accept(
        &self,
        keys: &Keys,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, AuthError> {
        let mut s = self.acceptor.accept(tcp).await.map_err(AuthError::Tls)?;
        let exporter = exporter(s.get_ref().1)?;
        let mut proof = [0u8; 32];
        s.read_exact(&mut proof).await.map_err(AuthError::Tls)?;
        check_dialer(keys, &exporter, &proof)?;
        s.write_all(&keys.prove(Role::Acceptor, &exporter))
            .await
            .map_err(AuthError::Tls)?;
        Ok(TlsStream::Server(s))
    }

    /// The dialer's side: TLS, then our proof (the caller's `Hello` goes in the same flight),
    /// and [`check_acceptor`] once the caller has written its `Hello`.
    pub async fn dial(
        &self,
        keys: &Keys,
        tcp: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, [u8; 32]), AuthError> {
        let name = ServerName::try_from(SERVER_NAME).expect("a valid DNS name");
        let mut s = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(AuthError::Tls)?;
        let exporter = exporter(s.get_ref().1)?;
        s.write_all(&keys.prove(Role::Dialer, &exporter))
            .await
            .map_err(AuthError::Tls)?;
        Ok((TlsStream::Client(s), exporter))
    }
}

/// The acceptor's check of the dialer's first 32 bytes after TLS: a proof, under an accepted
/// secret, for this very session.
pub fn check_dialer(keys: &Keys, exporter: &[u8; 32], proof: &[u8]) -> Result<(), AuthError> {
    match keys.check(Role::Dialer, exporter, proof) {
        Some(_) => Ok(()),
        None => Err(AuthError::BadProof),
    }
}

/// Reads the acceptor's proof on a dialed link and checks it.
pub async fn check_acceptor<S: AsyncRead + Unpin>(
    keys: &Keys,
    exporter: &[u8; 32],
    s: &mut S,
) -> Result<(), AuthError> {
    let mut proof: Proof = [0u8; 32];
    s.read_exact(&mut proof).await.map_err(AuthError::Tls)?;
    match keys.check(Role::Acceptor, exporter, &proof) {
        Some(_) => Ok(()),
        None => Err(AuthError::BadProof),
    }
}

/// Flushes what rustls holds (a TLS stream may keep written bytes until flushed).
pub async fn flush<S: AsyncWrite + Unpin>(s: &mut S) -> Result<(), AuthError> {
    s.flush().await.map_err(AuthError::Tls)
}

/// The session's proof input: the TLS exporter, once the handshake is complete and the peer
/// agreed on [`ALPN`].
pub fn exporter<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; 32], AuthError> {
    if conn.alpn_protocol() != Some(ALPN) {
        return Err(AuthError::Alpn);
    }
    conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)
        .map_err(|e| AuthError::Tls(std::io::Error::other(e)))
}

/// The dialer's certificate check: any certificate, since the secret proof decides who the
/// peer is; the TLS 1.3 handshake signature is still verified against it as usual (so the
/// peer holds the certificate's key). TLS 1.2 is never negotiated (TLS 1.3 only).
#[derive(Debug)]
struct ProofDecides {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ProofDecides {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secrets;
    use tokio::net::TcpListener;

    fn keys(s: &str) -> Keys {
        Keys::derive("c", &Secrets::new([s]).unwrap())
    }

    async fn pair(dialer: &str, acceptor: &str) -> (Result<(), AuthError>, Result<(), AuthError>) {
        let tls = LinkTls::new().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (ka, kd) = (keys(acceptor), keys(dialer));
        let t2 = tls.clone();
        let acc = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            let mut s = t2.accept(&ka, tcp).await?;
            flush(&mut s).await?;
            // Keep the stream open until the dialer has read the proof.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
            Ok(())
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let dial = async {
            let (mut s, x) = tls.dial(&kd, tcp).await?;
            flush(&mut s).await?;
            check_acceptor(&kd, &x, &mut s).await
        };
        let d = tokio::time::timeout(std::time::Duration::from_secs(5), dial)
            .await
            .unwrap();
        (d, acc.await.unwrap())
    }

    #[tokio::test]
    async fn the_same_secret_links_and_another_is_refused() {
        let (d, a) = pair("0123456789abcdef-x", "0123456789abcdef-x").await;
        assert!(d.is_ok() && a.is_ok(), "{d:?} {a:?}");
        let (d, a) = pair("0123456789abcdef-x", "0123456789abcdef-y").await;
        assert!(matches!(a, Err(AuthError::BadProof)), "{a:?}");
        assert!(d.is_err(), "the dialer gets no proof: {d:?}");
    }
}
