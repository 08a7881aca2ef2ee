//! Progress bars on stderr for the phases of a long run; a no-op when disabled.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One phase's bar. Hidden bars cost nothing, so callers never branch on `enabled`.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(enabled: bool, len: u64, what: &str) -> Self {
        let bar = if enabled {
            ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        let style = ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({elapsed})")
            .expect("static template is valid")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(what.to_string());
        Self { bar }
    }

    pub fn set(&self, pos: u64) {
        self.bar.set_position(pos);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
