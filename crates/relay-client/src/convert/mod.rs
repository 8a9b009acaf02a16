//! Conversions between the client's types and the generated protobuf types, one file per message.

mod alert;
mod result;
mod status;

pub(crate) use result::outcome;
