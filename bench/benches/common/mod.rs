//! Shared criterion settings: short runs, so `cargo bench -p raptor-bench` finishes in a couple
//! of minutes on the 2-core machine (these answer "how many ns", not "is it 1 % faster").

use criterion::Criterion;
use std::time::Duration;

pub fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}
