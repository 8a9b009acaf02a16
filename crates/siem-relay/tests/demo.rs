//! `siem-relay demo` as CI runs it: the real binary, non-interactive, for a fixed duration. It
//! must exit 0 with a summary that reports nothing lost and both failover times, leave no work
//! folder behind, and its receivers' files must hold only valid syslog + CEF messages: every
//! acknowledged alert at least once, and exactly the submitted alerts (numbered from 1 without a
//! gap), of every catalogue type. The admin CLI command it prints at the start works against
//! the running demo with the token it wrote to its output folder.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};
use testkit::TempDir;

/// The value after `label` on the summary line that starts with it (`  lost:   0`).
fn summary_value<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
        .trim()
}

/// Milliseconds of a failover line (`1280 ms (node 1 SIGKILLed -> ...)`, `0.4 ms (...)`).
fn millis(value: &str) -> f64 {
    value
        .strip_suffix(')')
        .and_then(|v| v.split(" ms (").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a measured time: {value}"))
}

/// Every alert and heartbeat of the receivers' files (activity-log records left out): (alert ID
/// if any, type token); every line must be syslog + CEF.
fn received(output: &Path) -> Vec<(Option<String>, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(output)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("siem-") && name.ends_with(".log")
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "one file per receiver: {files:?}");
    let mut messages = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let (_, record) = cef::parse_frame(line.as_bytes()).unwrap_or_else(|e| {
                panic!("{}:{}: not syslog + CEF: {e}\n{line}", f.display(), n + 1)
            });
            if cef::catalogue::ACTIVITY_AREAS.contains(&record.type_token()) {
                continue; // the activity log of the admin CLI's calls, not an alert
            }
            messages.push((
                record.get("eventId").map(str::to_owned),
                record.type_token().to_owned(),
            ));
        }
    }
    messages
}

/// Runs the demo with `args`, its output to files in `dir`; SIGTERM (the demo then stops what it
/// started) and at last SIGKILL if it runs past `within`. Exit status, stdout, stderr.
fn run_demo(dir: &Path, args: &[&str], within: Duration) -> (ExitStatus, String, String) {
    let (out, err) = (dir.join("demo.stdout"), dir.join("demo.stderr"));
    let mut child = Command::new(common::binary())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let ended = testkit::wait_until("the demo to end", within, || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if ended.is_err() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = testkit::wait_until("the demo to stop", Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    (status, read(&out), read(&err))
}

/// The admin CLI command the demo prints at the start: the token file and the endpoint.
fn printed_cli(stdout: &str) -> Option<(PathBuf, String)> {
    let line = stdout
        .lines()
        .find(|l| l.contains("admin CLI while it runs: "))?;
    let path = line.split("$(cat '").nth(1)?.split("')").next()?;
    let endpoint = line.split("siem-relay status --endpoint ").nth(1)?;
    let endpoint = endpoint.split_whitespace().next()?;
    Some((PathBuf::from(path), endpoint.to_owned()))
}

/// While the demo runs: its printed admin CLI command (`status`), and `whoami` with the same
/// token and endpoint, until both succeed (up to 40 s); their stdout.
fn use_the_printed_cli(stdout_file: PathBuf) -> std::thread::JoinHandle<(String, String)> {
    std::thread::spawn(move || {
        let run = |token: &str, endpoint: &str, args: &[&str]| {
            Command::new(common::binary())
                .args(args)
                .args(["--endpoint", endpoint, "--timeout", "3s"])
                .env("SIEM_RELAY_TOKEN", token)
                .env_remove("SIEM_RELAY_ENDPOINT")
                .output()
                .unwrap()
        };
        let mut answers = None;
        testkit::wait_until(
            "the printed admin CLI command to work",
            Duration::from_secs(40),
            || {
                let stdout = std::fs::read_to_string(&stdout_file).unwrap_or_default();
                let Some((token_file, endpoint)) = printed_cli(&stdout) else {
                    return false;
                };
                let token = std::fs::read_to_string(token_file).unwrap_or_default();
                let status = run(token.trim(), &endpoint, &["status"]);
                let whoami = run(token.trim(), &endpoint, &["--json", "whoami"]);
                let text =
                    |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
                if status.status.success() && whoami.status.success() {
                    answers = Some((text(&status), text(&whoami)));
                }
                answers.is_some()
            },
        )
        .unwrap();
        answers.unwrap()
    })
}

#[test]
fn the_demo_runs_to_completion_and_its_receivers_got_every_acknowledged_alert() {
    let dir = TempDir::new("relay-demo").unwrap();
    let output = dir.path().join("out");
    let started = Instant::now();
    let output_arg = output.to_string_lossy().into_owned();
    let args = [
        "demo",
        "--duration",
        "20",
        "--plain",
        "--output",
        &output_arg,
    ];
    let cli = use_the_printed_cli(dir.path().join("demo.stdout"));
    let (status, stdout, stderr) = run_demo(dir.path(), &args, Duration::from_secs(90));
    let took = started.elapsed();
    let node_logs = |out: &Path| -> String {
        (1..=3)
            .map(|n| std::fs::read_to_string(out.join(format!("node-{n}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    assert!(
        status.success(),
        "exit {status:?}\nstdout:\n{stdout}\nstderr:\n{stderr}\nnode logs:\n{}",
        node_logs(&output)
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");

    // the summary
    assert_eq!(summary_value(&stdout, "lost:"), "0", "{stdout}");
    let siem = millis(summary_value(&stdout, "SIEM failover:"));
    let leader = millis(summary_value(&stdout, "leader failover:"));
    assert!(leader > 0.0, "{stdout}");
    let submitted: usize = summary_value(&stdout, "submitted:")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(submitted >= 1000, "{stdout}");
    assert!(stdout.contains("duplicates suppressed:"), "{stdout}");
    assert!(
        stdout.contains("rejoined, a follower of node"),
        "the killed node came back: {stdout}"
    );

    // the admin CLI as printed, while it ran
    let (cli_status, whoami) = cli.join().unwrap();
    assert!(cli_status.starts_with("node:"), "{cli_status}");
    let me: serde_json::Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(me["name"], "admin", "{me}");
    assert!(output.join("admin-token").exists());

    // what it started is gone: the work folder it named at the start
    let work = stdout
        .split("node data and logs: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap();
    assert!(!Path::new(work).exists(), "{work} was left behind");

    // the receivers' files
    let messages = received(&output);
    let ids: BTreeSet<&str> = messages
        .iter()
        .filter_map(|(id, _)| id.as_deref())
        .collect();
    let acknowledged = std::fs::read_to_string(output.join("acknowledged.txt")).unwrap();
    let acknowledged: BTreeSet<&str> = acknowledged.lines().collect();
    assert_eq!(
        acknowledged.len(),
        submitted,
        "every submitted alert was acknowledged"
    );
    let missing: Vec<&&str> = acknowledged.difference(&ids).take(5).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never received: {missing:?}"
    );
    // the IDs are `<run>-1` ..= `<run>-<submitted>`: the union of the receivers' IDs is exactly
    // the submitted alerts
    let run_prefix = ids.iter().next().unwrap().rsplit_once('-').unwrap().0;
    let expected: BTreeSet<String> = (1..=submitted)
        .map(|n| format!("{run_prefix}-{n}"))
        .collect();
    let got: BTreeSet<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(got, expected, "the receivers' IDs are the submitted ones");
    let types: BTreeSet<&str> = messages
        .iter()
        .filter(|(id, _)| id.is_some())
        .map(|(_, t)| t.as_str())
        .collect();
    let catalogue: BTreeSet<&str> = cef::catalogue::ALERT_TYPES
        .iter()
        .map(|t| t.token)
        .collect();
    assert_eq!(types, catalogue, "sample alerts of every type");
    println!(
        "{submitted} alerts, {} messages; SIEM failover {siem} ms, leader failover {leader} ms, {took:?}",
        messages.len()
    );
}
