//! Progress of a long run on stderr: a bar with rows/s and the time left when the input's size is known
//! (files), a spinner with rows/s when it is not (Kafka, Redis, standard input), and plain periodic lines
//! when stderr is not a terminal (logs, CI) or with `--verbose`. `--quiet` shows none of it.

use std::fmt;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use onad_pipeline::job::{Monitor, Status, memory_mib};

/// Steps of the bar (its resolution).
const STEPS: u64 = 10_000;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A live bar or spinner, redrawn in place (stderr is a terminal).
    Live,
    /// One line every `every` (stderr is not a terminal, or `--verbose`), with memory.
    Lines {
        /// Time between lines.
        every: Duration,
    },
}

/// The progress monitor of `onad run`.
pub struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Progress").field("mode", &self.mode).finish()
    }
}

impl Progress {
    /// Progress shown in `mode`.
    pub fn new(mode: Mode) -> Progress {
        Progress { mode, bar: None, last_line: Instant::now() }
    }

    fn bar(&mut self, known: bool) -> &ProgressBar {
        self.bar.get_or_insert_with(|| {
            let (bar, template) = if known {
                (ProgressBar::new(STEPS), "{spinner} [{bar:30}] {percent:>3}% {msg}, {elapsed} elapsed, eta {eta}")
            } else {
                (ProgressBar::new_spinner(), "{spinner} {msg}, {elapsed} elapsed")
            };
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
            bar
        })
    }
}

fn rate(status: &Status<'_>) -> f64 {
    status.rows_this_run as f64 / status.elapsed.as_secs_f64().max(1e-9)
}

impl Monitor for Progress {
    fn check(&mut self, status: &Status<'_>) -> Option<String> {
        let rows = crate::run::thousands(status.rows);
        let speed = crate::run::rate(rate(status));
        match self.mode {
            Mode::Live => {
                let bar = self.bar(status.fraction_done.is_some());
                if let Some(f) = status.fraction_done {
                    bar.set_position((f * STEPS as f64).round() as u64);
                }
                bar.set_message(format!("{rows} rows, {speed} rows/s"));
                bar.tick();
            }
            Mode::Lines { every } => {
                if self.last_line.elapsed() >= every {
                    self.last_line = Instant::now();
                    let done = status.fraction_done.map(|f| format!(" ({:.1} %)", 100.0 * f)).unwrap_or_default();
                    let memory = memory_mib().map(|(rss, _)| format!(", resident {rss:.1} MiB")).unwrap_or_default();
                    let secs = status.elapsed.as_secs_f64();
                    let left = status
                        .fraction_done
                        .filter(|f| *f > 0.0)
                        .map(|f| format!(", about {:.0} s left", secs * (1.0 - f) / f))
                        .unwrap_or_default();
                    eprintln!("progress: {rows} rows{done}, {speed} rows/s{memory}, {secs:.0} s elapsed{left}");
                }
            }
        }
        None
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
