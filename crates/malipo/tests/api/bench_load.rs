//! `malipo bench load` keeps working: the real binary runs a short, slow
//! open-loop step of each operation (create + confirm, GET, list) on
//! SQLite, and on PostgreSQL with the pgbench reference, and reports every
//! step with its latency percentiles, no errors, and a verified ledger.
//! (Figures from a debug build under a test harness mean nothing; the
//! numbers themselves are measured in docs/benchmarks.md.)

use malipo_test_support::POSTGRES_URL_VARIABLE;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole command must finish within this, or it is killed and the
/// test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `malipo bench load` with `arguments`; answers (stdout, stderr).
fn bench_load(arguments: &[&str]) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_malipo"))
        .args(["bench", "load"])
        .args(arguments)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the malipo binary starts");
    // Read both pipes on threads so a full pipe can't stall the child.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).expect("stdout");
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).expect("stderr");
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("malipo bench load ran longer than {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (
        out.join().expect("stdout thread"),
        err.join().expect("stderr thread"),
    );
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// The rows of the step table (between its header and the next blank
/// line), split into cells.
fn step_rows(stdout: &str) -> Vec<Vec<String>> {
    let mut lines = stdout
        .lines()
        .skip_while(|line| !line.starts_with("| Backend | Operation | Offered"));
    lines.next().expect("the step table");
    lines.next().expect("its separator");
    lines
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

#[track_caller]
fn assert_steps(stdout: &str, stderr: &str, backend: &str) {
    let rows = step_rows(stdout);
    let operations: Vec<&str> = rows.iter().map(|row| row[1].as_str()).collect();
    assert_eq!(
        operations,
        ["create + confirm", "GET one payment", "list payments"],
        "{stdout}"
    );
    for row in &rows {
        assert_eq!(row[0], backend);
        assert_eq!(row[2], "20", "offered rate: {row:?}");
        assert_eq!(row[4], "40", "2 s at 20/s scheduled: {row:?}");
        assert_eq!(row[5], "40", "every request answered ok: {row:?}");
        assert_eq!(row[6], "0", "no errors: {row:?}");
        let percentiles: Vec<f64> = row[7..=10]
            .iter()
            .map(|cell| cell.parse().expect("milliseconds"))
            .collect();
        assert!(
            percentiles[0] > 0.0 && percentiles.windows(2).all(|pair| pair[0] <= pair[1]),
            "p50 <= p99 <= p99.9 <= max: {row:?}"
        );
        assert_ne!(row[11], "**errors**", "{row:?}");
    }
    assert!(
        stdout.contains(&format!("| {backend} | create + confirm |")) && stdout.contains("| yes |"),
        "the summary names the highest rate held and a verified ledger:\n{stdout}"
    );
    // The progress display ran: at least one line per step on stderr.
    let progress = stderr
        .lines()
        .filter(|line| line.contains(" sent, ") && line.contains(" answered, "))
        .count();
    assert!(progress >= 3, "{stderr}");
}

#[test]
fn a_short_load_run_on_sqlite() {
    let (stdout, stderr) = bench_load(&[
        "--rates",
        "20",
        "--step-seconds",
        "2",
        "--seed-payments",
        "5",
        "--connections",
        "4",
    ]);
    assert_steps(&stdout, &stderr, "SQLite");
    assert!(!stdout.contains("pgbench reference"), "{stdout}");
}

#[test]
fn a_short_load_run_on_postgres_with_pgbench() {
    let Ok(server) = std::env::var(POSTGRES_URL_VARIABLE) else {
        if std::env::var("CI").is_ok_and(|value| value == "true") {
            panic!("{POSTGRES_URL_VARIABLE} must be set in CI: PostgreSQL tests never skip there");
        }
        eprintln!("SKIPPED (PostgreSQL): set {POSTGRES_URL_VARIABLE} to run this test");
        return;
    };
    let (stdout, stderr) = bench_load(&[
        "--skip-sqlite",
        "--postgres",
        &server,
        "--rates",
        "20",
        "--step-seconds",
        "2",
        "--seed-payments",
        "5",
        "--connections",
        "4",
        "--pgbench-scale",
        "1",
        "--pgbench-clients",
        "2",
        "--pgbench-seconds",
        "1",
    ]);
    assert_steps(&stdout, &stderr, "PostgreSQL");
    assert!(
        stdout.contains("### pgbench reference (TPC-B-like, same server, same run)"),
        "{stdout}"
    );
}
