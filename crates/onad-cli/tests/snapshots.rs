//! Snapshot tests of what a user reads: `--help` of every command, the run summary, and one line per
//! configuration error. Each snapshot is a committed file under `tests/snapshots/`; a change in the
//! output fails the test with both texts. After a deliberate change, rewrite them with
//! `ONAD_BLESS=1 cargo test -p onad-cli --test snapshots` and review the diff.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `onad ARGS` in the workspace root: (exit code, stdout, stderr).
fn onad(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_onad")).args(args).current_dir(root()).output().expect("onad runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (o.status.code().unwrap_or(-1), text(&o.stdout), text(&o.stderr))
}

/// Compares `got` with the snapshot `name`, or writes it under `ONAD_BLESS=1`.
fn snapshot(name: &str, got: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name);
    if std::env::var_os("ONAD_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("no snapshot {}: write it with ONAD_BLESS=1", path.display()));
    if want != got {
        let first = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        panic!(
            "{name} changed at line {}:\n  was: {:?}\n  now: {:?}\n(ONAD_BLESS=1 rewrites the snapshots; review the diff)",
            first + 1,
            want.lines().nth(first).unwrap_or("<end>"),
            got.lines().nth(first).unwrap_or("<end>")
        );
    }
}

#[test]
fn help_of_every_command() {
    for (file, args) in [
        ("help.txt", &["--help"][..]),
        ("help-run.txt", &["run", "--help"]),
        ("help-report.txt", &["report", "--help"]),
        ("help-models.txt", &["models", "--help"]),
        ("help-eval.txt", &["eval", "--help"]),
        ("help-datasets.txt", &["datasets", "--help"]),
        ("help-checkpoint-inspect.txt", &["checkpoint", "inspect", "--help"]),
        ("help-worker.txt", &["worker", "--help"]),
    ] {
        let (code, out, err) = onad(args);
        assert_eq!(code, 0, "onad {args:?}: {err}");
        snapshot(file, &out);
    }
}

#[test]
fn the_run_summary() {
    // The speed line changes from run to run: its numbers are masked.
    let (code, out, err) = onad(&["run", "--model", "half_space_trees", "--set", "seed=1"]);
    assert_eq!(code, 0, "{err}");
    let masked: String = out
        .lines()
        .map(|l| if l.starts_with("speed ") { "speed      <masked>".to_owned() } else { l.to_owned() })
        .map(|l| l + "\n")
        .collect();
    snapshot("run-summary.txt", &masked);
}

#[test]
fn every_configuration_error_is_one_line_naming_what_to_change() {
    let cases: &[&[&str]] = &[
        &["run", "--model", "no_such_model"],
        &["run", "--model", "moving_average", "--set", "window_size=0"],
        &["run", "--model", "moving_average", "--set", "windw_size=10"],
        &["run", "--model", "moving_average", "--set", "window_size=10", "--set", "key=nope"],
        &["run", "--input", "no/such/file.csv"],
        &["run", "--input", "tests/data/malformed.csv", "--label-column", "nope"],
        &["run", "--threshold", "sometimes"],
        &["run", "--on-bad-row", "maybe"],
        &["run", "--resume"],
        &["run", "--report", "r.html", "--checkpoint", "ck"],
        &["run", "--threads", "0"],
        &["run", "--input", "tests/data/malformed.csv", "--ordered-by", "when"],
        &["run", "--workers", "2"],
        &["run", "--threshold", "p:0.01"],
        &["models", "forest"],
        &["completions", "tcsh"],
        &["datasets", "fetch", "nope"],
    ];
    let mut text = String::new();
    for args in cases {
        let (code, _, err) = onad(args);
        assert_eq!(code, 2, "onad {args:?} should be a configuration error: {err}");
        assert_eq!(err.lines().count(), 1, "onad {args:?} printed more than one line: {err}");
        assert!(err.starts_with("error: ") && !err.contains("panicked"), "{err}");
        text.push_str(&format!("$ onad {}\n{err}\n", args.join(" ")));
    }
    snapshot("errors.txt", &text);
}
