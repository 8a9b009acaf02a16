//! Generated protobuf messages and tonic services for siem-relay.
//!
//! This crate holds generated code only: every `.proto` file in the workspace's `proto/` folder is
//! compiled by `build.rs` (protox + tonic-prost-build, no system `protoc`). Domain types and their
//! conversions live in the crates that use them; protobuf is an edge, not the domain model.

/// Raft transport between nodes (`proto/raft.proto`, package `siemrelay.raft.v1`).
pub mod raft {
    /// Version 1 of the Raft transport.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("siemrelay.raft.v1");
    }
}

/// Alert ingest and node status (`proto/ingest.proto`, package `siemrelay.ingest.v1`).
pub mod ingest {
    /// Version 1 of the ingest API.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("siemrelay.ingest.v1");
    }
}

/// The admin API (`proto/admin.proto`, package `siemrelay.admin.v1`).
pub mod admin {
    /// Version 1 of the admin API.
    pub mod v1 {
        #![allow(missing_docs, clippy::all, clippy::pedantic)]
        tonic::include_proto!("siemrelay.admin.v1");
    }
}

/// The encoded `FileDescriptorSet` of every `.proto` file, for the gRPC reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/siemrelay_descriptor.bin"));
