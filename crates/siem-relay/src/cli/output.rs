//! Where a command's result goes: a readable text on stdout, or one JSON document with `--json`.

use relay_client::{AdminClient, Client};
use serde_json::Value;

/// What every command needs: the client and the output format.
pub struct Ctx {
    client: Client,
    admin: AdminClient,
    json: bool,
}

impl Ctx {
    /// A context printing JSON when `json` is set.
    pub fn new(client: Client, json: bool) -> Self {
        let admin = client.admin();
        Self {
            client,
            admin,
            json,
        }
    }

    /// The ingest client (for `Status`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The admin client (same connections).
    pub fn admin(&self) -> &AdminClient {
        &self.admin
    }

    /// Prints the result: `json()` as one document with `--json`, `text()` otherwise. The one
    /// place the CLI writes its results to stdout.
    #[allow(clippy::print_stdout)]
    pub fn emit(&self, json: impl FnOnce() -> Value, text: impl FnOnce() -> String) {
        if self.json {
            let doc = json();
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
            );
        } else {
            print!("{}", text());
        }
    }

    /// True with `--json` (notes then go to stderr so that stdout stays one document).
    pub fn json(&self) -> bool {
        self.json
    }
}
