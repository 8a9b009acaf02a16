//! Argument parsing of every command with the real `Cli` (`try_parse_from`): what each command
//! line becomes, and which ones are usage errors.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use clap::Parser;
use clap::error::ErrorKind;
use relay_client::{Protocol, Role};

use crate::cli::AdminCommand;
use crate::{Cli, Command};

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("siem-relay").chain(args.iter().copied()))
}

fn admin(args: &[&str]) -> AdminCommand {
    match parse(args).unwrap().command {
        Command::Admin(c) => c,
        other => panic!("{args:?} parsed as {other:?}"),
    }
}

fn usage_error(args: &[&str]) -> ErrorKind {
    parse(args).map(|_| ()).unwrap_err().kind()
}

/// The `Debug` text of a parsed command: enough to compare without `PartialEq` on every enum.
fn debug(args: &[&str]) -> String {
    format!("{:?}", admin(args))
}

#[test]
fn global_options_come_before_or_after_the_command() {
    for args in [
        &[
            "--endpoint",
            "a:1,b:2",
            "--json",
            "--timeout",
            "3s",
            "whoami",
        ][..],
        &[
            "whoami",
            "--endpoint",
            "a:1,b:2",
            "--json",
            "--timeout",
            "3s",
        ][..],
    ] {
        let cli = parse(args).unwrap();
        assert_eq!(cli.api.endpoint, "a:1,b:2");
        assert!(cli.api.json);
        assert_eq!(cli.api.timeout, Duration::from_secs(3));
    }
    let cli = parse(&["status"]).unwrap();
    assert!(!cli.api.json);
    assert_eq!(cli.api.timeout, Duration::from_secs(15));
    assert!(cli.api.ca.is_none());
}

#[test]
fn status_and_its_all_flag() {
    assert_eq!(debug(&["status"]), "Status(StatusArgs { all: false })");
    assert_eq!(
        debug(&["status", "--all"]),
        "Status(StatusArgs { all: true })"
    );
}

#[test]
fn settings_set_takes_typed_values_and_needs_one_change() {
    let AdminCommand::Settings(s) = admin(&[
        "settings",
        "set",
        "--host",
        "siem.example",
        "--port",
        "6514",
        "--protocol",
        "udp",
        "--heartbeat",
        "30s",
        "--max-message-bytes",
        "8192",
        "--alert-facility",
        "local1",
        "--activity-facility",
        "local2",
        "--host-id",
        "relay-1",
        "--expected-revision",
        "7",
    ]) else {
        panic!("not settings");
    };
    let text = format!("{s:?}");
    for part in [
        "host: Some(\"siem.example\")",
        "port: Some(6514)",
        "protocol: Some(Udp)",
        "heartbeat: Some(30s)",
        "max_message_bytes: Some(8192)",
        "expected_revision: Some(7)",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    assert_eq!(debug(&["settings", "show"]), "Settings(Show)");
    assert_eq!(
        usage_error(&["settings", "set"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        usage_error(&["settings", "set", "--port", "70000"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        usage_error(&["settings", "set", "--protocol", "relp"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        usage_error(&["settings", "set", "--heartbeat", "30"]),
        ErrorKind::ValueValidation
    );
    let _ = Protocol::Udp;
}

#[test]
fn logging_takes_on_off_switches() {
    assert_eq!(
        debug(&["logging", "--alerts", "on", "--activity-log", "off"]),
        "Logging(LoggingArgs { alerts: Some(true), activity_log: Some(false), expected_revision: None })"
    );
    assert_eq!(
        usage_error(&["logging"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        usage_error(&["logging", "--alerts", "maybe"]),
        ErrorKind::ValueValidation
    );
}

#[test]
fn tls_subcommands() {
    assert!(debug(&["tls", "upload", "ca.pem"]).contains("file: \"ca.pem\""));
    assert!(debug(&["tls", "enable", "--expected-revision", "3"]).contains("Some(3)"));
    assert!(debug(&["tls", "disable"]).starts_with("Tls(Disable("));
    assert!(debug(&["tls", "remove"]).starts_with("Tls(Remove("));
    assert_eq!(
        usage_error(&["tls", "upload"]),
        ErrorKind::MissingRequiredArgument
    );
}

#[test]
fn members_subcommands() {
    assert_eq!(debug(&["members", "list"]), "Members(List)");
    assert_eq!(
        debug(&["members", "add", "4", "10.0.0.4:7100"]),
        "Members(Add(AddArgs { id: 4, raft_addr: \"10.0.0.4:7100\" }))"
    );
    assert_eq!(
        debug(&["members", "remove", "2"]),
        "Members(Remove(RemoveArgs { id: 2 }))"
    );
    assert_eq!(
        usage_error(&["members", "remove", "two"]),
        ErrorKind::ValueValidation
    );
}

#[test]
fn test_alert_type() {
    assert_eq!(
        debug(&["test-alert"]),
        "TestAlert(TestAlertArgs { alert_type: None })"
    );
    assert_eq!(
        debug(&["test-alert", "--type", "url_web"]),
        "TestAlert(TestAlertArgs { alert_type: Some(\"url_web\") })"
    );
}

#[test]
fn token_subcommands_and_roles() {
    let AdminCommand::Token(t) = admin(&["token", "create", "alice", "--role", "auditor"]) else {
        panic!("not token");
    };
    assert!(format!("{t:?}").contains("role: SecurityAuditor"), "{t:?}");
    let _ = Role::SecurityAuditor;
    assert_eq!(
        usage_error(&["token", "create", "alice"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        usage_error(&["token", "create", "alice", "--role", "root"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(debug(&["token", "list"]), "Token(List)");
    assert_eq!(
        debug(&["token", "revoke", "alice"]),
        "Token(Revoke(RevokeArgs { name: \"alice\" }))"
    );
    assert_eq!(debug(&["whoami"]), "Whoami");
}

#[test]
fn serve_is_unchanged_and_unknown_commands_are_usage_errors() {
    assert!(matches!(
        parse(&["serve", "--dev"]).unwrap().command,
        Command::Serve { dev: true, .. }
    ));
    assert_eq!(usage_error(&["frobnicate"]), ErrorKind::InvalidSubcommand);
    assert_eq!(
        usage_error(&["status", "--timeout", "soon"]),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        usage_error(&["status", "--server-name", "x"]),
        ErrorKind::MissingRequiredArgument
    );
}

#[test]
fn every_admin_command_has_help_with_an_example() {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    let mut missing = Vec::new();
    let not_help = |s: &&clap::Command| s.get_name() != "help";
    for sub in cmd
        .get_subcommands()
        .filter(|s| !["serve", "demo"].contains(&s.get_name()))
        .filter(not_help)
    {
        let leaves: Vec<_> = if sub.has_subcommands() {
            sub.get_subcommands().filter(not_help).collect()
        } else {
            vec![sub]
        };
        for leaf in leaves {
            let help = leaf
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            if !help.contains("siem-relay ") {
                missing.push(format!("{} {}", sub.get_name(), leaf.get_name()));
            }
        }
    }
    assert!(missing.is_empty(), "no example in --help of {missing:?}");
}
