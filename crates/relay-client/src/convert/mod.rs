//! Conversions between the client's types and the generated protobuf types, one file per message
//! (or per small group of messages of one admin area).

mod alert;
mod certificate;
mod members;
mod result;
mod settings;
mod settings_update;
mod status;
mod tokens;

pub(crate) use members::members;
pub(crate) use result::outcome;
pub(crate) use settings::revised_settings;
pub(crate) use tokens::{identity, new_token, role_to_pb, token_info};

/// A field of a node's answer that does not fit the client's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadField {
    /// The field of the answer.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl BadField {
    /// `field` is missing from the answer.
    pub fn missing(field: &'static str) -> Self {
        Self {
            field,
            reason: "missing".into(),
        }
    }
}
