//! How many threads a model may use inside one batch call (`score_learn_many` of a tree ensemble), so
//! that a model's own parallelism and the pipeline's workers share the cores instead of competing.
//!
//! The budget is, in order: the calling thread's own setting ([`set_thread_model_threads`], which a
//! per-key run gives each of its workers: the cores divided among them), else the process's setting
//! ([`set_model_threads`], the CLI's `--threads`), else every core the process may use. Models that
//! split work across threads must give results that do not depend on the budget: each thread owns whole
//! trees, and per-row sums are taken in a fixed order.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The process's budget; 0 = every available core.
static PROCESS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's budget; 0 = the process's.
    static THREAD: Cell<usize> = const { Cell::new(0) };
}

/// The cores the process may use (at least 1).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Threads a model may use in one call on this thread (at least 1).
pub fn model_threads() -> usize {
    let own = THREAD.with(Cell::get);
    if own > 0 {
        return own;
    }
    match PROCESS.load(Ordering::Relaxed) {
        0 => available_cores(),
        n => n,
    }
}

/// Sets the process's budget (0: every available core).
pub fn set_model_threads(n: usize) {
    PROCESS.store(n, Ordering::Relaxed);
}

/// Sets the calling thread's budget (0: the process's).
pub fn set_thread_model_threads(n: usize) {
    THREAD.with(|t| t.set(n));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_setting_wins_over_the_process_setting() {
        // Run on a fresh thread: the process setting is shared with other tests.
        std::thread::spawn(|| {
            assert!(model_threads() >= 1);
            set_thread_model_threads(3);
            assert_eq!(model_threads(), 3);
            set_thread_model_threads(0);
            assert!(model_threads() >= 1);
        })
        .join()
        .unwrap();
    }
}
