//! Which certificate authorities an `https://` webhook URL is verified against: the file in
//! `[webhooks] ca_file`, or the system's roots (read once at start by rustls-native-certs,
//! from the same places OpenSSL looks, `SSL_CERT_FILE`/`SSL_CERT_DIR` included).

use crate::config::{ConfigError, WebhookSettings};
use ureq::tls::{Certificate, RootCerts};

/// The roots for `cfg`. A configured file that cannot be read or holds no certificate is an
/// error naming `webhooks.ca_file`; unreadable system roots are logged and leave an empty
/// set, so `https://` deliveries fail (and are counted) while `http://` ones go on.
pub fn roots(cfg: &WebhookSettings) -> Result<RootCerts, ConfigError> {
    let ders = match &cfg.ca_file {
        Some(path) => crate::tls::read_certs("webhooks.ca_file", path)?,
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "cannot read a system CA certificate for https webhooks");
            }
            found.certs
        }
    };
    Ok(ders
        .iter()
        .map(|d| Certificate::from_der(d.as_ref()).to_owned())
        .collect::<Vec<_>>()
        .into())
}
