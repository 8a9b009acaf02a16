//! `siem-relay status [--all]`: `Ingest.Status` of the node reached, or of every address of the
//! endpoint.

use std::net::SocketAddr;

use clap::Args;
use relay_client::{ClientError, NodeStatus, SiemAddressState};
use serde_json::{Value, json};

use super::fail::{Failure, describe};
use super::output::Ctx;
use super::table::{Table, key_values};
use super::values::utc;

/// Examples shown by `siem-relay status --help`.
pub const EXAMPLES: &str = "\
Examples:
  siem-relay status
  siem-relay --endpoint 10.0.0.1:7001,10.0.0.2:7001,10.0.0.3:7001 status --all
  siem-relay --json status

The SIEM addresses and the delivery counters are reported by the leader (the node that
delivers); `--all` asks every node and exits 1 if one of them did not answer.";

/// `status [--all]`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct StatusArgs {
    /// Ask every address of the endpoint (every node of a list, every address a name resolves
    /// to), not just the first that answers.
    #[arg(long)]
    pub all: bool,
}

/// Runs `status`.
pub async fn run(ctx: &Ctx, args: StatusArgs) -> Result<(), Failure> {
    if args.all {
        return run_all(ctx).await;
    }
    let served = ctx
        .client()
        .status_served()
        .await
        .map_err(Failure::call("status"))?;
    ctx.emit(
        || status_json(served.addr, &served.value),
        || status_text(served.addr, &served.value),
    );
    Ok(())
}

async fn run_all(ctx: &Ctx) -> Result<(), Failure> {
    let each = ctx
        .client()
        .status_each()
        .await
        .map_err(Failure::call("status --all"))?;
    ctx.emit(|| all_json(&each), || all_text(&each));
    let failed = each.iter().filter(|(_, r)| r.is_err()).count();
    if failed > 0 {
        return Err(Failure::Partial {
            what: "status --all",
            failed,
            total: each.len(),
        });
    }
    Ok(())
}

fn leader(s: &NodeStatus) -> String {
    s.leader_id
        .map_or_else(|| "none known".into(), |l| l.to_string())
}

fn status_text(addr: SocketAddr, s: &NodeStatus) -> String {
    let members: Vec<String> = s
        .members
        .iter()
        .map(|(id, a)| format!("{id}={a}"))
        .collect();
    let mut pairs = vec![
        ("node", format!("{} (at {addr})", s.node_id)),
        ("leader", leader(s)),
        ("term", s.term.to_string()),
        ("applied", s.last_applied.to_string()),
        (
            "outbox",
            format!("{} records, {} bytes", s.outbox_records, s.outbox_bytes),
        ),
        ("delivered up to", s.delivered_up_to.to_string()),
        ("dedup keys", s.dedup_keys.to_string()),
        ("members", members.join(", ")),
    ];
    let is_leader = s.leader_id == Some(s.node_id);
    if is_leader {
        pairs.push(("delivered (as leader)", s.delivered_total.to_string()));
        let last = s.last_delivery_ms.map_or_else(
            || "none yet".into(),
            |ms| utc(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
        pairs.push(("last delivery", last));
    }
    let mut text = key_values(&pairs);
    if is_leader {
        text.push('\n');
        text.push_str(&siem_table(&s.siem_addresses));
    } else {
        text.push_str("\nSIEM addresses: reported by the leader (see `siem-relay status --all`)\n");
    }
    text
}

fn siem_table(addresses: &[SiemAddressState]) -> String {
    let mut t = Table::new(&["SIEM ADDRESS", "STATE", "FAILOVERS", "LAST ERROR"]);
    for a in addresses {
        let state = if a.up { "up" } else { "down" };
        t.row(vec![
            a.address.clone(),
            state.into(),
            a.failovers.to_string(),
            a.last_error.clone(),
        ]);
    }
    t.render()
}

fn all_text(each: &[(SocketAddr, Result<NodeStatus, ClientError>)]) -> String {
    let mut t = Table::new(&[
        "ADDRESS",
        "NODE",
        "LEADER",
        "TERM",
        "APPLIED",
        "OUTBOX",
        "DELIVERED",
        "ERROR",
    ]);
    for (addr, answer) in each {
        let row = match answer {
            Ok(s) => vec![
                addr.to_string(),
                s.node_id.to_string(),
                leader(s),
                s.term.to_string(),
                s.last_applied.to_string(),
                s.outbox_records.to_string(),
                s.delivered_up_to.to_string(),
                String::new(),
            ],
            Err(e) => {
                let mut row = vec![addr.to_string()];
                row.resize(7, "-".into());
                row.push(describe(e));
                row
            }
        };
        t.row(row);
    }
    let mut text = t.render();
    let delivering = each
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .find(|s| s.leader_id == Some(s.node_id));
    if let Some(l) = delivering {
        text.push_str(&format!(
            "\nSIEM addresses of the leader (node {}):\n",
            l.node_id
        ));
        text.push_str(&siem_table(&l.siem_addresses));
    }
    text
}

fn status_json(addr: SocketAddr, s: &NodeStatus) -> Value {
    let members: serde_json::Map<String, Value> = s
        .members
        .iter()
        .map(|(id, a)| (id.to_string(), Value::from(a.as_str())))
        .collect();
    let siem: Vec<Value> = s
        .siem_addresses
        .iter()
        .map(|a| {
            json!({
                "address": a.address,
                "up": a.up,
                "last_error": a.last_error,
                "failovers": a.failovers,
            })
        })
        .collect();
    json!({
        "address": addr.to_string(),
        "node_id": s.node_id,
        "leader_id": s.leader_id,
        "term": s.term,
        "last_applied": s.last_applied,
        "outbox_records": s.outbox_records,
        "outbox_bytes": s.outbox_bytes,
        "delivered_up_to": s.delivered_up_to,
        "dedup_keys": s.dedup_keys,
        "members": members,
        "siem_addresses": siem,
        "last_delivery_ms": s.last_delivery_ms,
        "delivered_total": s.delivered_total,
    })
}

fn all_json(each: &[(SocketAddr, Result<NodeStatus, ClientError>)]) -> Value {
    let nodes: Vec<Value> = each
        .iter()
        .map(|(addr, answer)| match answer {
            Ok(s) => status_json(*addr, s),
            Err(e) => json!({ "address": addr.to_string(), "error": describe(e) }),
        })
        .collect();
    json!({ "nodes": nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader_status() -> NodeStatus {
        NodeStatus {
            node_id: 1,
            leader_id: Some(1),
            term: 3,
            last_applied: 120,
            outbox_records: 5,
            outbox_bytes: 2048,
            delivered_up_to: 115,
            members: [(1, "10.0.0.1:7100".to_string())].into(),
            siem_addresses: vec![SiemAddressState {
                address: "10.0.0.9:514".into(),
                up: true,
                last_error: String::new(),
                failovers: 2,
            }],
            delivered_total: 115,
            ..Default::default()
        }
    }

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], 7001))
    }

    #[test]
    fn the_leader_shows_its_siem_addresses() {
        let text = status_text(addr(1), &leader_status());
        assert!(
            text.contains("node:                   1 (at 10.0.0.1:7001)\n"),
            "{text}"
        );
        assert!(
            text.contains("outbox:                 5 records, 2048 bytes\n"),
            "{text}"
        );
        assert!(
            text.contains("last delivery:          none yet\n"),
            "{text}"
        );
        assert!(
            text.contains("SIEM ADDRESS  STATE  FAILOVERS  LAST ERROR\n"),
            "{text}"
        );
        assert!(text.contains("10.0.0.9:514  up     2\n"), "{text}");
    }

    #[test]
    fn every_node_gets_a_row_and_one_that_did_not_answer_says_why() {
        let down = ClientError::Unavailable {
            attempts: 1,
            elapsed: std::time::Duration::from_millis(3),
            last_addr: addr(2),
            last: tonic::Status::unavailable("connection refused"),
        };
        let each = vec![(addr(1), Ok(leader_status())), (addr(2), Err(down))];
        let text = all_text(&each);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("ADDRESS        NODE  LEADER  TERM"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("10.0.0.1:7001  1     1       3"),
            "{text}"
        );
        assert!(lines[2].starts_with("10.0.0.2:7001  -     -"), "{text}");
        assert!(lines[2].contains("no node answered"), "{text}");
        assert!(
            text.contains("SIEM addresses of the leader (node 1):"),
            "{text}"
        );
        let v = all_json(&each);
        assert_eq!(v["nodes"][0]["node_id"], 1);
        assert!(v["nodes"][1]["error"].is_string());
    }
}
