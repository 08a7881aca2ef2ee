//! The rules between an app's chunked-event options and `[limits]` (docs/limits.md, "Large
//! events in chunks"): what serde cannot check.

use super::{invalid, AppConfig, Config, ConfigError};
use crate::protocol::chunks::MIN_DATA_BYTES;

impl Config {
    /// `apps[i]`'s `max_chunked_event_bytes` and `client_chunks_per_second`.
    pub(super) fn validate_chunks(&self, i: usize, app: &AppConfig) -> Result<(), ConfigError> {
        if app.client_chunks_per_second == 0 {
            return Err(invalid(
                format!("apps[{i}].client_chunks_per_second"),
                "must be greater than 0",
            ));
        }
        if app.max_chunked_event_bytes == 0 {
            return Ok(());
        }
        let l = &self.limits;
        if l.max_event_data_bytes < MIN_DATA_BYTES {
            return Err(invalid(
                format!("apps[{i}].max_chunked_event_bytes"),
                format!("needs limits.max_event_data_bytes of at least {MIN_DATA_BYTES} (the size of one chunk)"),
            ));
        }
        // A chunked event reaches each subscriber's queue whole (its chunks are never
        // interleaved with other events), so a queue smaller than the event would cut every
        // subscriber with 4100.
        if app.max_chunked_event_bytes >= l.outbox_max_bytes {
            return Err(invalid(
                format!("apps[{i}].max_chunked_event_bytes"),
                format!(
                    "must be below limits.outbox_max_bytes ({}; about twice the event is advisable), or every subscriber would be cut with 4100",
                    l.outbox_max_bytes
                ),
            ));
        }
        Ok(())
    }
}
