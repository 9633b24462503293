//! Isolation forests: [`ASDIsolationForest`] (one tree per block of the stream), the random cut
//! forest [`RandomCutForest`], the mass-based [`HalfSpaceTrees`] and the half-space chains of [`XStream`].
//!
//! Shared pieces live here: `average_path_length`, the normaliser `c(n)` of Liu, Ting & Zhou (2008).

mod asd;
mod half_space;
mod mondrian;
mod online;
mod rand_hist;
pub(crate) mod random_cut;
mod stream_rhf;
pub(crate) mod xstream;

pub use asd::{ASDIsolationForest, ASDIsolationForestParams};
pub use half_space::{HalfSpaceTrees, HalfSpaceTreesParams};
pub use mondrian::{MondrianForest, MondrianForestParams};
pub use online::{OnlineIsolationForest, OnlineIsolationForestParams, OnlineTreeType, SplitMetric};
pub use rand_hist::{HistogramRange, StreamRandomHistogramForest, StreamRandomHistogramForestParams};
pub use random_cut::{RandomCutForest, RandomCutForestParams, RcfScoring};
pub use stream_rhf::{StreamRHF, StreamRHFParams};
pub use xstream::{XStream, XStreamParams};

/// The threads to split `trees` trees among for a batch of `rows` rows, from the budget of
/// [`onad_core::threads`], when that pays (rows x trees at least `min_work`, the work that starting the
/// threads is worth); `None`: the one-thread loop.
pub(crate) fn tree_threads(trees: usize, rows: usize, min_work: usize) -> Option<usize> {
    let threads = onad_core::threads::model_threads().min(trees);
    (threads > 1 && rows.saturating_mul(trees) >= min_work).then_some(threads)
}

/// The parallel tree paths' common frame: splits `trees` into `threads` contiguous chunks, runs
/// `work(chunk, values)` on each chunk on its own thread, where `values` holds one slot per row and tree
/// of the chunk (`rows` rows, row-major, zeros to start), and returns for every row the sum of its values
/// in tree order, as a one-thread loop over all the trees adds them. A thread's panic is re-raised.
pub(crate) fn per_tree_sums<T: Send>(
    trees: &mut [T],
    threads: usize,
    rows: usize,
    work: impl Fn(&mut [T], &mut [f64]) + Sync,
) -> Vec<f64> {
    let per = trees.len().div_ceil(threads.max(1)).max(1);
    let work = &work;
    let parts: Vec<Vec<f64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = trees
            .chunks_mut(per)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut values = vec![0.0; rows * chunk.len()];
                    work(chunk, &mut values);
                    values
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    (0..rows)
        .map(|i| {
            let mut total = 0.0;
            for part in &parts {
                let k = part.len() / rows.max(1);
                for v in &part[i * k..(i + 1) * k] {
                    total += v;
                }
            }
            total
        })
        .collect()
}

/// For the tests of the parallel tree paths: runs `score_learn_many` over `rows` (row-major, `d`
/// features) in batches of `batch` rows, on a fresh thread whose model-thread budget is `threads`; returns
/// the scores' bits and the final state's bytes.
#[cfg(test)]
pub(crate) fn run_on_threads<M, F>(
    threads: usize,
    build: F,
    rows: &[f64],
    d: usize,
    batch: usize,
) -> (Vec<u64>, Vec<u8>)
where
    M: onad_core::Detector + serde::Serialize,
    F: FnOnce() -> M + Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                onad_core::threads::set_thread_model_threads(threads);
                let schema = onad_core::Schema::numbered("f", d);
                let mut m = build();
                let mut out = Vec::new();
                for (k, chunk) in rows.chunks(d * batch).enumerate() {
                    let b =
                        onad_core::Batch::from_rows(schema.clone(), chunk.to_vec(), None, (k * batch) as u64).unwrap();
                    m.score_learn_many(&b, &mut out);
                }
                (out.iter().map(|s| s.to_bits()).collect(), postcard::to_stdvec(&m).unwrap())
            })
            .join()
            .unwrap()
    })
}

/// Euler's constant, for the harmonic-number approximation `H(i) ~ ln(i) + gamma`.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// `c(n)`, the average path length of an unsuccessful search in a binary search tree of `n` points
/// (Liu, Ting & Zhou 2008, eq. 1): `c(n) = 2 H(n - 1) - 2 (n - 1) / n` with `H(i) ~ ln(i) + gamma`, and
/// the exact values `c(2) = 1`, `c(0) = c(1) = 0` (Liu, Ting & Zhou 2012; scikit-learn). It normalises
/// path lengths into scores and stands in for the subtree a depth-limited leaf of `n` points would have
/// grown.
///
/// onad 0.3.0 applies the approximation at `n = 2` too, which gives `c(2) = 0.1544` instead of 1.
pub(crate) fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_path_length_follows_the_formula() {
        assert_eq!(average_path_length(0), 0.0);
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        // 2 (ln 2 + gamma) - 4/3
        assert!((average_path_length(3) - 1.207_392_357_589_623).abs() < 1e-12, "{}", average_path_length(3));
        // c(256) = 2 (ln 255 + gamma) - 510/256 = 10.2447...
        let c256 = 2.0 * (255f64.ln() + EULER_GAMMA) - 510.0 / 256.0;
        assert_eq!(average_path_length(256), c256);
        assert!((c256 - 10.244_770_920_119_917).abs() < 1e-9, "{c256}");
        // Increasing, and within 2 ln n.
        for n in 2..2000 {
            assert!(average_path_length(n + 1) > average_path_length(n), "{n}");
            assert!(average_path_length(n) < 2.0 * (n as f64).ln() + 1.0, "{n}");
        }
    }
}
