//! `siem-relay members list | add | remove`.

use clap::{Args, Subcommand};
use relay_client::Members;
use serde_json::{Value, json};

use super::fail::Failure;
use super::output::Ctx;
use super::table::Table;

const LIST_EXAMPLES: &str = "Example:\n  siem-relay members list";
const ADD_EXAMPLES: &str = "\
Example:
  siem-relay members add 4 10.0.0.4:7100

Start the new node first, with an empty data folder and no `initial_members`; it joins as a
learner, catches up, then votes. Its ID must never have been used in this cluster.";
const REMOVE_EXAMPLES: &str = "\
Example:
  siem-relay members remove 2

The ID is retired for good: a node can never join again under it.";

/// `members` subcommands.
#[derive(Subcommand, Debug)]
pub enum MembersCommand {
    /// List the members, the leader and the retired IDs (administrator and auditor).
    #[command(after_help = LIST_EXAMPLES)]
    List,
    /// Add a running node to the cluster (administrator).
    #[command(after_help = ADD_EXAMPLES)]
    Add(AddArgs),
    /// Remove a node from the cluster for good (administrator).
    #[command(after_help = REMOVE_EXAMPLES)]
    Remove(RemoveArgs),
}

/// `members add ID RAFT_ADDR`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct AddArgs {
    /// The new node's ID (never used before in this cluster).
    pub id: u64,
    /// Its Raft address as the other nodes reach it, `host:port`.
    pub raft_addr: String,
}

/// `members remove ID`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct RemoveArgs {
    /// The ID of the node to remove.
    pub id: u64,
}

/// Runs a `members` subcommand.
pub async fn run(ctx: &Ctx, command: MembersCommand) -> Result<(), Failure> {
    let admin = ctx.admin();
    let members = match command {
        MembersCommand::List => admin
            .members()
            .await
            .map_err(Failure::call("members list"))?,
        MembersCommand::Add(a) => admin
            .add_node(a.id, a.raft_addr)
            .await
            .map_err(Failure::call("members add"))?,
        MembersCommand::Remove(r) => admin
            .remove_node(r.id)
            .await
            .map_err(Failure::call("members remove"))?,
    };
    ctx.emit(|| members_json(&members), || members_text(&members));
    Ok(())
}

fn members_text(m: &Members) -> String {
    let mut t = Table::new(&["NODE", "RAFT ADDRESS", "ROLE", "LEADER"]);
    for member in &m.members {
        let role = if member.voter { "voter" } else { "learner" };
        let leader = if member.leader { "*" } else { "" };
        t.row(vec![
            member.node_id.to_string(),
            member.raft_address.clone(),
            role.into(),
            leader.into(),
        ]);
    }
    let mut text = t.render();
    if m.leader_id.is_none() {
        text.push_str("no leader known\n");
    }
    if !m.retired_node_ids.is_empty() {
        let ids: Vec<String> = m.retired_node_ids.iter().map(u64::to_string).collect();
        text.push_str(&format!("retired IDs (never reused): {}\n", ids.join(", ")));
    }
    text
}

fn members_json(m: &Members) -> Value {
    let members: Vec<Value> = m
        .members
        .iter()
        .map(|x| {
            json!({
                "node_id": x.node_id,
                "raft_address": x.raft_address,
                "voter": x.voter,
                "leader": x.leader,
            })
        })
        .collect();
    json!({
        "members": members,
        "leader_id": m.leader_id,
        "retired_node_ids": m.retired_node_ids,
    })
}

#[cfg(test)]
mod tests {
    use relay_client::Member;

    use super::*;

    fn sample() -> Members {
        let member = |node_id, voter, leader| Member {
            node_id,
            raft_address: format!("10.0.0.{node_id}:7100"),
            voter,
            leader,
        };
        Members {
            members: vec![member(1, true, true), member(4, false, false)],
            leader_id: Some(1),
            retired_node_ids: vec![2, 3],
        }
    }

    #[test]
    fn the_table_marks_the_leader_and_lists_retired_ids() {
        assert_eq!(
            members_text(&sample()),
            "NODE  RAFT ADDRESS   ROLE     LEADER\n\
             1     10.0.0.1:7100  voter    *\n\
             4     10.0.0.4:7100  learner\n\
             retired IDs (never reused): 2, 3\n"
        );
    }

    #[test]
    fn the_json_has_no_leader_as_null() {
        let mut m = sample();
        m.leader_id = None;
        let v = members_json(&m);
        assert!(v["leader_id"].is_null());
        assert_eq!(v["members"][1]["voter"], false);
        assert_eq!(v["retired_node_ids"][1], 3);
    }
}
