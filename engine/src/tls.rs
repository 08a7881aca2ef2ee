//! The `[tls]` certificate and key, loaded once at start into a rustls `ServerConfig`.
//!
//! Everything here runs before the shards start: a missing file, a file without PEM
//! certificates, a key that is not a private key or does not match the certificate are all
//! refused with a [`ConfigError`] naming `tls.cert` or `tls.key`. The result is immutable and
//! shared with the shards (each makes its own acceptor from it, see
//! [`crate::transport::LocalAcceptor`]).
//!
//! Session resumption is off on purpose. A resumption cache or ticket key shared by the shards
//! would be shared mutable state (rustls guards it with a lock taken on every handshake), and a
//! per-shard one would rarely hit: the kernel picks a connection's shard by its 4-tuple, so a
//! reconnecting client usually lands on another shard. Pusher connections are long-lived;
//! a full handshake per connection is the cheaper trade.

use crate::config::{ConfigError, TlsConfig};
use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer};
use futures_rustls::rustls::{self, ServerConfig};
use std::path::Path;
use std::sync::Arc;

/// The loaded TLS settings, shared (read-only) by every shard.
#[derive(Clone, Debug)]
pub struct Tls {
    /// Certificate, key and protocol choices; each shard clones it for its own acceptor.
    pub config: Arc<ServerConfig>,
    /// `tls.only`: refuse plain connections.
    pub only: bool,
}

/// Reads and checks the certificate chain and key named by `[tls]`.
pub fn load(cfg: &TlsConfig) -> Result<Tls, ConfigError> {
    let certs = read_certs("tls.cert", &cfg.cert)?;
    let key = read_key(&cfg.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("tls", format!("no usable TLS version: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            invalid(
                "tls.key",
                format!(
                    "{}: unusable with the certificate in tls.cert: {e}",
                    cfg.key.display()
                ),
            )
        })?;
    // Browsers offer `h2` for https://; the API and the upgrade are HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // No resumption (see the module doc).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Tls {
        config: Arc::new(config),
        only: cfg.only,
    })
}

fn invalid(field: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message,
    }
}

fn read(field: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(field, format!("cannot read {}: {e}", path.display())))
}

/// The certificates of a PEM file (at least one); errors name `field`.
pub fn read_certs(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(field, format!("{}: bad PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(invalid(
            field,
            format!("{}: no CERTIFICATE block in the file", path.display()),
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let pem = read("tls.key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        invalid(
            "tls.key",
            format!(
                "{}: no private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
                path.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `text` to a fresh file in the temp dir and returns its path.
    fn temp(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("raptor-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn cfg(cert: &Path, key: &Path) -> TlsConfig {
        TlsConfig {
            cert: cert.into(),
            key: key.into(),
            only: false,
        }
    }

    fn err(c: &TlsConfig) -> String {
        load(c).unwrap_err().to_string()
    }

    #[test]
    fn the_tls_table() {
        use crate::config::Config;
        assert!(Config::default().tls.is_none());
        let c = Config::from_toml("[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n", "t").unwrap();
        let t = c.tls.unwrap();
        assert_eq!(
            (t.cert.to_str(), t.key.to_str(), t.only),
            (Some("/c.pem"), Some("/k.pem"), false)
        );
        let c = Config::from_toml("[tls]\ncert = \"c\"\nkey = \"k\"\nonly = true\n", "t").unwrap();
        assert!(c.tls.unwrap().only);
        let e = Config::from_toml("[tls]\ncert = \"c\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key"), "{e}");
        let e = Config::from_toml("[tls]\ncert = \"c\"\nkey = \"k\"\nonl = true\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("onl"), "{e}");
    }

    #[test]
    fn loads_a_matching_pair_and_names_the_field_otherwise() {
        let a = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = temp("a.crt", &a.cert.pem());
        let key = temp("a.key", &a.signing_key.serialize_pem());
        let other_key = temp("b.key", &b.signing_key.serialize_pem());
        let junk = temp("junk.pem", "not pem at all\n");
        let missing = std::env::temp_dir().join("raptor-no-such-file.pem");

        let tls = load(&cfg(&cert, &key)).unwrap();
        assert_eq!(tls.config.alpn_protocols, vec![b"http/1.1".to_vec()]);

        let e = err(&cfg(&missing, &key));
        assert!(e.contains("`tls.cert`") && e.contains("cannot read"), "{e}");
        let e = err(&cfg(&junk, &key));
        assert!(
            e.contains("`tls.cert`") && e.contains("no CERTIFICATE"),
            "{e}"
        );
        let e = err(&cfg(&cert, &missing));
        assert!(e.contains("`tls.key`") && e.contains("cannot read"), "{e}");
        let e = err(&cfg(&cert, &junk));
        assert!(
            e.contains("`tls.key`") && e.contains("no private key"),
            "{e}"
        );
        // A certificate file where the key should be.
        let e = err(&cfg(&cert, &cert));
        assert!(e.contains("`tls.key`"), "{e}");
        let e = err(&cfg(&cert, &other_key));
        assert!(e.contains("`tls.key`") && e.contains("unusable"), "{e}");
    }
}
