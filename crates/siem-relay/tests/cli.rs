//! The `siem-relay` admin commands as a user runs them: the real binary as the client, real node
//! processes (`common::Cluster`) and rsyslog as the SIEM.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::admin::{ADMIN_TOKEN, TokenFile, await_administrator, until};
use common::cli::{cli, endpoint, json, stderr, stdout};
use common::{Cluster, NodeToml, WAIT, event_id, siem_table};
use testkit::{Receiver, Rsyslog, TempDir, TestPki};

/// A 3-node cluster delivering to one rsyslog.
fn cluster_with_siem() -> (Cluster, Rsyslog) {
    let net = testkit::LoopbackNet::random();
    let ip = net.ip(200);
    let siem = Rsyslog::start(Receiver::Tcp, (ip, testkit::free_port(ip)).into()).unwrap();
    let cluster = Cluster::start(3, &siem_table(siem.addr, ""));
    (cluster, siem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_next_node_when_the_first_of_the_list_is_down() {
    let (mut cluster, _siem) = cluster_with_siem();
    cluster.leader().await;
    cluster.nodes.get_mut(&1).unwrap().kill();
    let list = endpoint(&cluster, &[1, 2, 3]);

    let out = cli(&["--endpoint", &list, "--json", "status"], &[]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), cluster.logs());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let node = doc["node_id"].as_u64().unwrap();
    assert!(node == 2 || node == 3, "{doc}");
    assert_eq!(doc["address"], cluster.nodes[&node].api.to_string());
    assert_eq!(doc["members"].as_object().unwrap().len(), 3, "{doc}");

    let out = cli(&["--endpoint", &list, "status"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("node:"), "{text}");
    assert!(text.contains("leader:"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_all_shows_every_node_and_the_leader_s_siem_and_fails_for_a_dead_node() {
    let (mut cluster, siem) = cluster_with_siem();
    let leader = cluster.leader().await;
    let list = endpoint(&cluster, &[1, 2, 3]);

    // The leader reports the SIEM address once its pump has connected.
    let doc = until(&cluster, "a SIEM address up at the leader", || async {
        let out = cli(&["--endpoint", &list, "--json", "status", "--all"], &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let up = doc["nodes"].as_array().unwrap().iter().any(|n| {
            n["node_id"] == leader
                && n["siem_addresses"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|s| s["up"] == true))
        });
        up.then_some(doc)
    })
    .await;
    let nodes = doc["nodes"].as_array().unwrap();
    let ids: Vec<u64> = nodes
        .iter()
        .map(|n| n["node_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3], "{doc}");
    assert!(nodes.iter().all(|n| n["leader_id"] == leader), "{doc}");

    let out = cli(&["--endpoint", &list, "status", "--all"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ADDRESS"), "{text}");
    assert!(
        text.contains(&format!("SIEM addresses of the leader (node {leader}):")),
        "{text}"
    );
    assert!(text.contains(&siem.addr.to_string()), "{text}");

    cluster.nodes.get_mut(&2).unwrap().kill();
    let out = cli(&["--endpoint", &list, "status", "--all"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(
        err, "error: status --all: 1 of 3 nodes did not answer\n",
        "one line on stderr"
    );
    let row = stdout(&out)
        .lines()
        .find(|l| l.starts_with(&cluster.nodes[&2].api.to_string()))
        .map(str::to_owned)
        .unwrap();
    assert!(row.contains("no node answered"), "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_cannot_be_reached_is_one_error_line_and_exit_code_1() {
    let net = testkit::LoopbackNet::random();
    let ip = net.ip(1);
    let closed = format!("{ip}:{}", testkit::free_port(ip));
    let out = cli(
        &["--timeout", "2s", "whoami"],
        &[("SIEM_RELAY_ENDPOINT", &closed)],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: whoami: no node answered"), "{err}");
    assert!(out.stdout.is_empty());

    let out = cli(&["--endpoint", "no-port", "status"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: invalid endpoint `no-port`: missing `:port`\n"
    );
    let out = cli(&["settings", "set"], &[]);
    assert_eq!(out.status.code(), Some(2), "clap's usage errors exit 2");
}

/// A 3-node cluster delivering to `siem`, whose first administrator token is [`ADMIN_TOKEN`] in
/// the file returned (kept alive with the cluster); returns once every node knows the
/// administrator.
async fn admin_cluster(siem: &Rsyslog) -> (Cluster, TokenFile) {
    let token = TokenFile::new();
    let tables = token.table();
    let cluster = Cluster::start_with(3, &siem_table(siem.addr, ""), |_, _| NodeToml {
        listen: String::new(),
        tables: tables.clone(),
    });
    cluster.leader().await;
    for node in cluster.nodes.values() {
        await_administrator(&cluster, node).await;
    }
    (cluster, token)
}

/// `siem-relay --endpoint <node id's API> --json <args>` with `token`; the parsed stdout.
fn json_as(cluster: &Cluster, id: u64, token: &str, args: &[&str]) -> serde_json::Value {
    json(cluster, &endpoint(cluster, &[id]), token, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_set_through_one_node_are_read_through_another_and_used_for_delivery() {
    let net = testkit::LoopbackNet::random();
    let (a, b) = (net.ip(200), net.ip(201));
    let first = Rsyslog::start(Receiver::Tcp, (a, testkit::free_port(a)).into()).unwrap();
    let second = Rsyslog::start(Receiver::Tcp, (b, testkit::free_port(b)).into()).unwrap();
    let (cluster, token) = admin_cluster(&first).await;
    let token_file = token.path.display().to_string();

    let before = json_as(&cluster, 2, ADMIN_TOKEN, &["settings", "show"]);
    let revision = before["revision"].as_u64().unwrap().to_string();
    let (host, port) = (b.to_string(), second.addr.port().to_string());
    let api1 = cluster.nodes[&1].api.to_string();
    let out = cli(
        &[
            "--endpoint",
            &api1,
            "--token-file",
            &token_file,
            "settings",
            "set",
            "--host",
            &host,
            "--port",
            &port,
            "--heartbeat",
            "30s",
            "--expected-revision",
            &revision,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("host:               {host}\n")),
        "{text}"
    );
    assert!(text.contains("heartbeat:          30s\n"), "{text}");

    let after = json_as(&cluster, 3, ADMIN_TOKEN, &["settings", "show"]);
    assert_eq!(after["host"], host.as_str(), "{after}");
    assert_eq!(after["port"], second.addr.port(), "{after}");
    assert_eq!(after["heartbeat_ms"], 30_000, "{after}");
    assert!(
        after["revision"].as_u64() > before["revision"].as_u64(),
        "{after}"
    );

    let sent = json_as(&cluster, 3, ADMIN_TOKEN, &["test-alert"]);
    let id = sent["alert_id"].as_str().unwrap().to_string();
    testkit::wait_for("the test alert at the new SIEM", WAIT, || {
        second
            .lines()
            .iter()
            .any(|l| event_id(l).as_deref() == Some(&id))
    })
    .await
    .unwrap();
    assert!(
        !first
            .lines()
            .iter()
            .any(|l| event_id(l).as_deref() == Some(&id)),
        "the old SIEM got the test alert"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_but_every_change_is_refused_with_one_line_and_exit_code_1() {
    let (_, siem) = {
        let net = testkit::LoopbackNet::random();
        let ip = net.ip(200);
        (
            net,
            Rsyslog::start(Receiver::Tcp, (ip, testkit::free_port(ip)).into()).unwrap(),
        )
    };
    let (cluster, _token) = admin_cluster(&siem).await;

    let api = cluster.nodes[&2].api.to_string();
    let out = cli(
        &[
            "--endpoint",
            &api,
            "--json",
            "token",
            "create",
            "audit-team",
            "--role",
            "auditor",
        ],
        &[("SIEM_RELAY_TOKEN", ADMIN_TOKEN)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["role"], "auditor");
    assert!(
        stderr(&out).contains("cannot be shown again"),
        "{}",
        stderr(&out)
    );
    let auditor = created["token"].as_str().unwrap().to_string();

    let me = json_as(&cluster, 3, &auditor, &["whoami"]);
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("audit-team"), Some("auditor"))
    );
    json_as(&cluster, 3, &auditor, &["settings", "show"]);
    json_as(&cluster, 3, &auditor, &["members", "list"]);
    let tokens = json_as(&cluster, 3, &auditor, &["token", "list"]);
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 2, "{tokens}");

    let list = endpoint(&cluster, &[1, 2, 3]);
    for (what, args) in [
        ("settings set", &["settings", "set", "--port", "1514"][..]),
        ("logging", &["logging", "--alerts", "off"][..]),
        ("tls disable", &["tls", "disable"][..]),
        (
            "token create",
            &["token", "create", "mallory", "--role", "administrator"][..],
        ),
        ("members remove", &["members", "remove", "3"][..]),
        ("test-alert", &["test-alert"][..]),
    ] {
        let mut all = vec!["--endpoint", list.as_str()];
        all.extend_from_slice(args);
        let out = cli(&all, &[("SIEM_RELAY_TOKEN", &auditor)]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stdout(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(
            err.starts_with(&format!("error: {what}: permission denied")),
            "{what}: {err}"
        );
        assert!(out.stdout.is_empty(), "{what}");
    }
    let after = json_as(&cluster, 1, ADMIN_TOKEN, &["settings", "show"]);
    assert_ne!(after["port"], 1514, "{after}");

    let out = cli(
        &["--endpoint", &list, "whoami"],
        &[("SIEM_RELAY_TOKEN", "not-a-token")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: whoami: not authenticated"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_needs_an_uploaded_certificate_and_the_upload_shows_it() {
    let net = testkit::LoopbackNet::random();
    let ip = net.ip(200);
    let siem = Rsyslog::start(Receiver::Tcp, (ip, testkit::free_port(ip)).into()).unwrap();
    let (cluster, _token) = admin_cluster(&siem).await;
    let dir = TempDir::new("cli-tls").unwrap();
    let list = endpoint(&cluster, &[1, 2, 3]);
    let env = [
        ("SIEM_RELAY_TOKEN", ADMIN_TOKEN),
        ("SIEM_RELAY_ENDPOINT", list.as_str()),
    ];

    let out = cli(&["tls", "enable"], &env);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: tls enable: refused: "), "{err}");
    assert!(err.contains("certificate"), "{err}");

    let pki = TestPki::new("siem.test").unwrap();
    let pem = dir.path().join("ca.pem");
    std::fs::write(&pem, &pki.ca_pem).unwrap();
    let out = cli(&["tls", "upload", pem.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for part in [
        "uploaded 1 certificate(s)",
        "subject:",
        "issuer:",
        "expires:",
        "sha256:",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    let out = cli(&["--json", "tls", "enable"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["tls_enabled"], true, "{doc}");
    assert_eq!(
        doc["tls_certificates"].as_array().unwrap().len(),
        1,
        "{doc}"
    );

    let out = cli(&["tls", "remove"], &env);
    assert_eq!(out.status.code(), Some(1), "refused while TLS is on");

    let members = json_as(&cluster, 2, ADMIN_TOKEN, &["members", "list"]);
    assert_eq!(members["members"].as_array().unwrap().len(), 3, "{members}");
    assert!(members["leader_id"].as_u64().is_some(), "{members}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ca_the_cli_talks_tls_to_the_api_and_verifies_the_node() {
    let net = testkit::LoopbackNet::random();
    let siem_addr = std::net::SocketAddr::new(net.ip(200), testkit::free_port(net.ip(200)));
    let pki = TestPki::new("relay.test").unwrap();
    let files = TempDir::new("cli-api-tls").unwrap();
    let path = |name: &str| files.path().join(name).display().to_string();
    std::fs::write(path("api.pem"), &pki.server_cert_pem).unwrap();
    std::fs::write(path("api.key"), &pki.server_key_pem).unwrap();
    std::fs::write(path("ca.pem"), &pki.ca_pem).unwrap();
    let other = TestPki::new("relay.test").unwrap();
    std::fs::write(path("other-ca.pem"), &other.ca_pem).unwrap();
    let token = TokenFile::new();
    let cluster = Cluster::start_with(1, &siem_table(siem_addr, ""), |_, _| NodeToml {
        listen: format!(
            "api_tls_cert = \"{}\"\napi_tls_key = \"{}\"",
            path("api.pem"),
            path("api.key")
        ),
        tables: token.table(),
    });
    let api = cluster.nodes[&1].api.to_string();
    let (ca, other_ca) = (path("ca.pem"), path("other-ca.pem"));
    let token = token.path.display().to_string();
    let tls = |ca: &str| {
        cli(
            &[
                "--endpoint",
                &api,
                "--ca",
                ca,
                "--server-name",
                "relay.test",
                "--token-file",
                &token,
                "--timeout",
                "3s",
                "--json",
                "whoami",
            ],
            &[],
        )
    };
    // The first call waits until the bootstrap administrator is known.
    let out = until(&cluster, "whoami over TLS", || async {
        let out = tls(&ca);
        out.status.success().then_some(out)
    })
    .await;
    assert!(out.status.success(), "{}\n{}", stderr(&out), cluster.logs());
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(me["name"], "admin");

    let out = tls(&other_ca);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a node certificate from another CA"
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let out = cli(
        &[
            "--endpoint",
            &api,
            "--token-file",
            &token,
            "--timeout",
            "3s",
            "whoami",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "plain text to a TLS port");
    let out = cli(
        &["--endpoint", &api, "--ca", &path("missing.pem"), "whoami"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
