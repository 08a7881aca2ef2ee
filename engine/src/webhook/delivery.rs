//! The delivery threads: each makes one blocking HTTP request at a time and reports back.
//!
//! **Boundary:** a delivery thread knows nothing of batches or retries; it gets a [`Job`],
//! POSTs it, and sends the [`Outcome`] to the dispatcher.

use super::endpoint::Job;
use super::Input;
use super::HTTP_TIMEOUT;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, SyncSender};
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The receiver answered with this status.
    Status(u16),
    /// No answer: connection refused, timeout, malformed response …
    Error(String),
}

impl Outcome {
    /// Only a 2xx answer counts as delivered; everything else is retried.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Status(s) if (200..300).contains(s))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Status(s) => write!(f, "http status {s}"),
            Outcome::Error(e) => f.write_str(e),
        }
    }
}

/// The thread body: runs jobs until the dispatcher goes away.
pub(crate) fn run(worker: usize, jobs: Receiver<Job>, done: SyncSender<Input>, roots: RootCerts) {
    let agent = agent(roots);
    for job in jobs.iter() {
        // A panic in the client must not leave the endpoint "in flight" forever.
        let outcome = catch_unwind(AssertUnwindSafe(|| post(&agent, &job)))
            .unwrap_or_else(|_| Outcome::Error("http client panicked".into()));
        let report = Input::Done {
            worker,
            endpoint: job.endpoint,
            outcome,
        };
        if done.send(report).is_err() {
            return;
        }
    }
}

/// HTTP, or HTTPS verified against `roots` (rustls, ring); no proxy from the environment,
/// no redirects (a 3xx is a failure, like any non-2xx), every phase bounded by
/// [`HTTP_TIMEOUT`].
fn agent(roots: RootCerts) -> ureq::Agent {
    let t = Some(HTTP_TIMEOUT);
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(roots)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .user_agent(concat!("raptor/", env!("CARGO_PKG_VERSION")))
        .timeout_resolve(t)
        .timeout_connect(t)
        .timeout_send_request(t)
        .timeout_send_body(t)
        .timeout_recv_response(t)
        .timeout_recv_body(t)
        .build()
        .into()
}

fn post(agent: &ureq::Agent, job: &Job) -> Outcome {
    let res = agent
        .post(&*job.url)
        // Exactly this: the npm SDK refuses `application/json; charset=utf-8`.
        .header("Content-Type", "application/json")
        .header("X-Pusher-Key", &*job.key)
        .header("X-Pusher-Signature", &*job.signature)
        .send(&job.body[..]);
    match res {
        Ok(mut resp) => {
            // Read (a bounded amount of) the answer so the connection can be reused.
            let _ = resp.body_mut().with_config().limit(64 * 1024).read_to_vec();
            Outcome::Status(resp.status().as_u16())
        }
        Err(e) => Outcome::Error(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_2xx_is_success() {
        assert!(Outcome::Status(200).is_success());
        assert!(Outcome::Status(204).is_success());
        assert!(!Outcome::Status(301).is_success());
        assert!(!Outcome::Status(500).is_success());
        assert!(!Outcome::Error("refused".into()).is_success());
        assert_eq!(Outcome::Status(500).to_string(), "http status 500");
    }
}
